"""The documentation site (docs/): it builds with warnings as errors, every internal link
of the built HTML resolves, and pages render in a real browser (headless Chromium).

Slow (a full Sphinx build runs the gallery examples): ``pytest -m slow
tests/test_docs_site.py``.  Set ``LEDMUS_DOCS_HTML=docs/_build/html`` to check an
already built site instead of building one into a temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/bin/chromium")
DOCS_PACKAGES = (
    "sphinx",
    "myst_parser",
    "pydata_sphinx_theme",
    "sphinx_gallery",
    "sphinx_autodoc_typehints",
)
# links to other sites, e-mail, in-page anchors: not files of the built site
EXTERNAL = ("http:", "https:", "mailto:", "#", "//", "data:", "javascript:")
# a full build (autodoc of every module + the gallery scripts) takes ~30-60 s on the
# 2-core CI machine; 15 min leaves room for a slow, shared runner without hanging forever
BUILD_TIMEOUT_S = 900
# headless Chromium loads a local page in ~2 s; 120 s covers a cold start on a busy machine
# (and a CDN script such as MathJax that has to time out when there is no network)
BROWSER_TIMEOUT_S = 120


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def html_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site: ``LEDMUS_DOCS_HTML`` if set, else a fresh ``-W`` build."""
    given = os.environ.get("LEDMUS_DOCS_HTML")
    if given:
        path = Path(given).resolve()
        if not (path / "index.html").is_file():
            pytest.fail(f"LEDMUS_DOCS_HTML={given}: no index.html there")
        return path
    missing = [m for m in DOCS_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f'documentation packages not installed ({", ".join(missing)}): pip install -e ".[docs]"'
        )
    out = tmp_path_factory.mktemp("docs")
    cmd = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
        "-d", str(out / "doctrees"), str(DOCS), str(out / "html"),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
        pytest.fail(
            "sphinx -W build failed:\n" + "\n".join(warnings or proc.stderr.splitlines()[-40:])
        )
    return out / "html"


# --------------------------------------------------------------------------- HTML parsing
class _Page(HTMLParser):
    """Collects the link targets (href, src) and the anchor ids of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src"):
                self.links.append(value)
            elif name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value)


def parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(html_dir: Path) -> list[tuple[str, str, str]]:
    """``(page, link, problem)`` for every internal link that does not resolve; the
    problem names the missing file (relative to the site) or the missing anchor."""
    cache: dict[Path, _Page] = {}
    broken = []
    # _static/ holds the theme's assets, among them Jinja templates named *.html
    pages = sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)
    for page_path in pages:
        page = str(page_path.relative_to(html_dir))
        for link in parse(page_path, cache).links:
            link = link.strip()
            if not link or link.lower().startswith(EXTERNAL):
                continue
            parts = urlsplit(link)
            if parts.scheme:  # any other scheme (file:, ftp:): not a relative site link
                broken.append((page, link, f"absolute URL {link}"))
                continue
            target = (page_path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            try:
                name = str(target.relative_to(html_dir.resolve()))
            except ValueError:
                name = str(target)  # points outside the site
            if not target.is_file():
                broken.append((page, link, f"no file {name}"))
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target, cache).ids:
                    broken.append((page, link, f"no id {parts.fragment!r} in {name}"))
    return broken


def summarize(broken: list[tuple[str, str, str]]) -> str:
    """One line per problem (the sidebar repeats a link on every page)."""
    pages: dict[str, set[str]] = {}
    for page, _link, problem in broken:
        pages.setdefault(problem, set()).add(page)
    return "\n".join(
        f"{problem}: linked from {len(where)} page(s), e.g. {', '.join(sorted(where)[:3])}"
        for problem, where in sorted(pages.items())
    )


# --------------------------------------------------------------------------- browser
def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={user_data}", *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False
    )


def rendered_dom(page: Path, user_data: Path) -> str:
    proc = chromium("--dump-dom", page.as_uri(), user_data=user_data)
    assert proc.returncode == 0, f"chromium failed on {page}:\n{proc.stderr[-2000:]}"
    return proc.stdout


def text_of(fragment: str) -> str:
    """Visible text of an HTML fragment, without the theme's ``#`` heading links."""
    fragment = re.sub(r'<a class="headerlink".*?</a>', "", fragment, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def first_h1(dom: str) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", dom, flags=re.S)
    return text_of(match.group(1)) if match else ""


def markdown_title(source: Path) -> str:
    """The text of the first ``# `` heading of a Markdown page (inline markup removed)."""
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return " ".join(re.sub(r"[`*_]", "", line[2:]).split())
    raise AssertionError(f"{source} has no '# ' title")


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="headless Chromium not installed (/usr/bin/chromium): "
    "apt-get install -y --no-install-recommends chromium",
)


# --------------------------------------------------------------------------- tests
def test_internal_links_resolve(html_dir: Path) -> None:
    n_pages = len(list(html_dir.rglob("*.html")))
    # index, getting started, 11 guide pages, 3 developer pages, results, API, gallery,
    # references: far more than 20 pages; fewer means the build or the path is wrong
    assert n_pages >= 20, f"only {n_pages} HTML pages under {html_dir}"
    broken = broken_links(html_dir)
    if broken:
        pytest.fail(f"{len(broken)} broken internal link(s):\n" + summarize(broken))


@needs_chromium
def test_front_page_renders(html_dir: Path, tmp_path: Path) -> None:
    index = html_dir / "index.html"
    dom = rendered_dom(index, tmp_path / "profile")
    assert "<title>ledmus" in dom, "front page title is not ledmus"
    assert first_h1(dom) == "ledmus", f"front page H1 is {first_h1(dom)!r}"
    # pydata-sphinx-theme's header navigation bar, with links into the user guide
    assert "bd-header" in dom and "navbar-nav" in dom, "theme navigation bar missing"
    assert 'href="getting_started.html"' in dom, "navigation does not link Getting started"
    assert 'href="guide/coupled_run.html"' in dom, "front page does not link the guide"

    shot = tmp_path / "front.png"
    proc = chromium(
        "--window-size=1280,900",
        f"--screenshot={shot}",
        index.as_uri(),
        user_data=tmp_path / "profile",
    )
    assert proc.returncode == 0 and shot.is_file(), f"no screenshot:\n{proc.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG"
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(shot)[..., :3]  # (900, 1280, 3) floats in [0, 1]
    assert pixels.shape[:2] == (900, 1280), f"screenshot is {pixels.shape}"
    # a blank or error page has no ink: the rendered front page (title, navigation bar,
    # two paragraphs) paints ~6 % of the pixels non-white (measured, 1280x900) and a blank
    # page 0 %; 2 % leaves room for a shorter front page.  "Non-white": any channel below
    # 0.9, so light-grey theme backgrounds (~0.97) do not count as ink
    ink = float((pixels.min(axis=-1) < 0.9).mean())
    assert ink > 0.02, f"screenshot nearly blank: {ink:.1%} non-white pixels"
    # the front page's anti-aliased text, links and theme colours give ~1100 distinct
    # colours (measured), a blank page 1; 50 only rules out a blank or flat-colour image
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colours > 50, f"screenshot has only {colours} distinct colours"


@needs_chromium
def test_guide_page_renders(html_dir: Path, tmp_path: Path) -> None:
    page = html_dir / "guide" / "coupled_run.html"
    assert page.is_file(), "guide/coupled_run.html was not built"
    dom = rendered_dom(page, tmp_path / "profile")
    title = markdown_title(DOCS / "guide" / "coupled_run.md")
    assert first_h1(dom) == title, f"guide H1 is {first_h1(dom)!r}, source says {title!r}"
    assert "bd-header" in dom and "navbar-nav" in dom, "theme navigation bar missing"
    # the primary sidebar lists the guide's pages (section navigation) on guide pages
    assert "bd-docs-nav" in dom, "theme section navigation (sidebar) missing"
    assert 'href="command_line.html"' in dom, "sidebar does not link the sibling pages"
