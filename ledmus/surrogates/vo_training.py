"""Stochastic variational inference for the virtual-observable model
(Kaltenbach & Koutsourelakis eqs 9-15).

The ELBO of ``n`` sequences of ``T+1`` particle densities, with the mean-field lognormal
``q(X_{0:T})`` per sequence and point (MAP, flat prior) estimates of ``theta = (NN,
sigma_r)``::

    F = sum_i E_q[ log p_cf(x_i | X_i) + log p(c_i = 0 | X_i) + log p(X_i,1:T | X_i,0) ]
        + H[q_i]                                  (a flat prior on X_0)

estimated with ``mc`` reparameterised samples per step and maximised by Adam over
``(mu, log s)`` and ``theta`` together (training) or over ``(mu, log s)`` alone (inferring
new sequences with a trained model, as Algorithm 1 needs for a test sequence).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from ..progress import progress_bar
from .vo import LognormalPosterior, VirtualObservableCG


def counts_of(states: np.ndarray, n_particles: int) -> torch.Tensor:
    """Particle counts per bin ``(n, T+1, d)`` from bin fractions ``(n, T+1, 1, d)``."""
    return torch.as_tensor(np.rint(np.asarray(states)[:, :, 0] * n_particles), dtype=torch.float64)


def elbo(
    model: VirtualObservableCG,
    post: LognormalPosterior,
    counts: torch.Tensor,
    mc: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Monte Carlo ELBO per sequence, ``(n,)`` (nats)."""
    x = post.sample(mc, generator)
    log_lik = (
        model.emission_log_prob(x, counts)
        + model.constraint_log_prob(x)
        + model.transition_log_prob(x)
    )
    return log_lik.mean(dim=0) + post.entropy()


def fit(
    model: VirtualObservableCG,
    states: np.ndarray,
    *,
    steps: int,
    lr: float,
    mc: int,
    seed: int,
    train_model: bool,
    progress: bool = False,
    desc: str = "vo",
) -> tuple[LognormalPosterior, dict[str, Any]]:
    """Maximise the ELBO of the sequences ``states`` ``(n, T+1, 1, d)`` (bin fractions);
    with ``train_model`` the model's weights too.  The learning rate decays by cosine to
    1 % of ``lr``.  Returns the posterior and the history (ELBO per nat and step, sigma_r,
    wall time)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    counts = counts_of(states, model.n_particles)
    post = LognormalPosterior(counts / model.n_particles)
    params = list(post.parameters()) + (list(model.parameters()) if train_model else [])
    if not train_model:
        model.requires_grad_(False)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), eta_min=0.01 * lr)
    norm = counts[0].numel() * counts.shape[0]
    history: dict[str, Any] = {"step": [], "elbo": [], "sigma_r": []}
    start = time.perf_counter()
    try:
        for step in progress_bar(range(steps), enabled=progress, desc=desc, leave=False):
            opt.zero_grad()
            loss = -elbo(model, post, counts, mc, gen).sum() / norm
            loss.backward()
            opt.step()
            sched.step()
            if step % max(1, steps // 200) == 0 or step == steps - 1:
                history["step"].append(step)
                history["elbo"].append(-loss.item())
                history["sigma_r"].append(model.sigma_r.item())
    finally:
        model.requires_grad_(True)
    history["wall_s"] = time.perf_counter() - start
    return post, history


def train_vo(
    model: VirtualObservableCG, states: np.ndarray, cfg: dict[str, Any], progress: bool = False
) -> tuple[LognormalPosterior, dict[str, Any]]:
    """Train on the first ``sequences`` (0: all) of ``states`` ``(n, T+1, 1, d)``."""
    n = cfg["sequences"] or len(states)
    if n > len(states):
        raise ValueError(f"config train_vo.sequences={n} but the data hold {len(states)}")
    return fit(
        model,
        states[:n],
        steps=cfg["steps"],
        lr=cfg["lr"],
        mc=cfg["mc_samples"],
        seed=cfg.get("seed", 0),
        train_model=True,
        progress=progress,
    )


def infer(
    model: VirtualObservableCG, states: np.ndarray, cfg: dict[str, Any], seed: int = 0
) -> LognormalPosterior:
    """The posterior of new sequences with the model fixed (a copy is optimised)."""
    frozen = copy.deepcopy(model)
    post, _ = fit(
        frozen,
        states,
        steps=cfg["infer_steps"],
        lr=cfg["lr"],
        mc=cfg["mc_samples"],
        seed=seed,
        train_model=False,
    )
    return post


def train_vo_from_config(
    cfg: dict[str, Any], raw_config: dict[str, Any], out: Any, traj: Any, progress: bool = True
) -> Any:
    """``kind: vo``: build the model from the data (state shape, ``d_f`` = the solver's
    ``n_particles``), train it, write the checkpoint (float64), ``<stem>_loss.png`` (ELBO
    and sigma_r per step) and ``<stem>_history.json``."""
    from ..atomic import write_json
    from ..trajectory import fingerprint
    from .checkpoint import save_checkpoint

    if "n_particles" not in traj.params:
        raise ValueError(f"kind vo needs particle data (n_particles); {cfg['system']!r} has none")
    spec = {
        "system": cfg["system"],
        "state_shape": list(traj.states.shape[2:]),
        "n_particles": int(traj.params["n_particles"]),
        "dt_coarse": float(traj.dt_coarse),
        "t_infer": int(traj.states.shape[1]) - 1,
        "vo": dict(cfg["vo"]),
    }
    model = VirtualObservableCG(spec)
    post, hist = train_vo(model, traj.states, {**cfg["train_vo"], "seed": cfg["seed"]}, progress)
    mass = (1.0 - post.mean().detach().sum(dim=-1)).abs()
    history = {
        "vo": hist,
        "wall_time_s": {"vo": hist["wall_s"]},
        "sequences": int(len(mass)),
        "mass_error_inferred_train": {"mean": float(mass.mean()), "max": float(mass.max())},
        "sigma_r": model.sigma_r.item(),
    }
    save_checkpoint(
        out,
        model,
        config={**raw_config, "dtype": "float64"},
        fingerprint=fingerprint(traj),
        history=history,
    )
    _plot_history(hist, out.with_name(out.stem + "_loss.png"))
    write_json(out.with_name(out.stem + "_history.json"), history)
    return out


def _plot_history(hist: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(hist["step"], hist["elbo"])
    axes[0].set_ylabel("ELBO per count and bin")
    axes[1].semilogy(hist["step"], hist["sigma_r"])
    axes[1].set_ylabel("sigma_r")
    for ax in axes:
        ax.set_xlabel("Adam step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
