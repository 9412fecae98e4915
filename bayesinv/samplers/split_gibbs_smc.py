r"""Split Gibbs SMC: sequential Monte Carlo over a ladder of noise levels, split Gibbs sweeps as its moves.

Plain split Gibbs (:mod:`bayesinv.samplers.split_gibbs`) is exact in the limit, but its coupling ``rho`` is
tied to ``sigma_y / ||A||``, and at small ``rho`` a chain moves between the prior's modes (a lesion or none)
only slowly: the modes' proportions stay where the chains' start put them. This sampler fixes the proportions
with importance weights. It runs ``N`` particles through the tempered posteriors

    pi_k(x) ∝ p(x) N(y; A x, sigma_k^2 I),    sigma_0 = start * sigma_y > sigma_1 > ... > sigma_K = sigma_y

(a geometric ladder). Each ``pi_k`` is the ``x``-marginal of the exact split
``p(x) N(z; x, rho_k^2 I) N(y; A z, sigma_k^2 I - rho_k^2 A A^T)`` with ``rho_k = rho_fraction * sigma_k /
||A||``, so one split Gibbs sweep at ``sigma_k`` leaves ``pi_k`` invariant (exact likelihood step; the prior
step is the DDPM denoising-posterior draw, the one inexact part). Large ``rho_k`` at the top of the ladder
makes large prior steps that cross between modes. The incremental weight from ``pi_{k-1}`` to ``pi_k`` is a
ratio of Gaussian likelihoods, which needs no prior density:

    log w = -(m / 2) log(sigma_k^2 / sigma_{k-1}^2) - ||y - A x||^2 / 2 (1 / sigma_k^2 - 1 / sigma_{k-1}^2)

(the first term is shared by all particles and drops out). A particle cloud is resampled (systematic) when
its effective sample size falls below ``ess_threshold * N`` and always at the end of the ladder; then
``final_sweeps`` exact sweeps at ``sigma_y`` (full DDPM prior steps) decorrelate the copies. The returned
draws are the ``N`` equally weighted particles.

This is the SMC sampler of Del Moral, Doucet, Jasra 2006 ("Sequential Monte Carlo samplers", JRSS B) on a
likelihood-tempering path (Neal 2001, "Annealed importance sampling"; Chopin 2002), with the exact split
Gibbs kernel of Marnissi et al. 2018 (Entropy) and the diffusion-prior step of PnP-DM (Wu, Sun, Chen, Zhang,
Yue, Bouman 2024, NeurIPS), whose annealed coupling is here made exact by the weights.

The per-level weight variance is measured and returned (``extras["log_weight_var"]``): with ``m``
measurements it scales like ``(sigma_{k-1}^2 / sigma_k^2 - 1)^2 m_eff / 2`` (``m_eff`` the number of
data-determined directions): on the 32x32 lesion-mixture testbed it is about 0.05 per level for 80 levels over
a factor 6. It adds up over the levels where the kernel refreshes the particles within their mode but rarely
moves them between modes: on an ambiguous deblurring case (``P(lesion | y) = 0.47``, ``sigma_y = 0.05``) a
lesion appears or vanishes in 4% of sweeps at ``sigma = 0.05-0.07``, 8% at 0.1, 19% at 0.15, 47% at 0.3
(``python benchmarks/exact_images.py mixing``). Resampling at those low levels collapses the modes' lineages,
so the ladder starts low (``start = 2.5``) and spends its levels on the small-``sigma`` end: with 80 levels
from ``6 sigma_y`` that case's lesion probability varied with standard deviation 0.16 over clouds of 79
particles (6 clouds), with 80 levels from ``2.5 sigma_y`` 0.085 (4 clouds), against 0.057 for sets of 79
exact draws (``python benchmarks/exact_images.py smc-check --steps 80 --start 6 --start-sweeps 20
--final-sweeps 30 --clouds 6`` and ``smc-check --steps 80``).
Cost per particle: ``start_sweeps + steps`` sweeps of at most ``level_steps + 1`` network calls, then
``final_sweeps`` sweeps of ``t + 1`` calls (``t`` the split timestep, about 10 for ``sigma_y = 0.05``).

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior, vp_linear
>>> prior = GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(200))
>>> problem = InverseProblem(Identity((2,)), Gaussian(0.5), prior)
>>> post = sample_split_gibbs_smc(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=4, steps=3,
...                               start_sweeps=2, final_sweeps=2, generator=torch.Generator().manual_seed(0))
>>> tuple(post.samples.shape)
(4, 1, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from bayesinv.operators.base import operator_norm_squared
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import Clock, check_inputs, make_posterior, run_chain
from bayesinv.samplers.smc import effective_sample_size, systematic_resample
from bayesinv.samplers.split_gibbs import check_linear_gaussian, likelihood_root_method, split_gibbs_sweep

__all__ = ["sample_split_gibbs_smc", "split_gibbs_smc_particles", "sigma_ladder"]


def sigma_ladder(sigma_y: float, start: float, levels: int) -> list[float]:
    """``sigma_k = sigma_y * start^(1 - k / levels)``, ``k = 0..levels`` (geometric, ``sigma_levels = sigma_y``)."""
    return [sigma_y * start ** (1 - k / levels) for k in range(levels + 1)]


class _State(NamedTuple):
    x: torch.Tensor
    z: torch.Tensor
    log_w: torch.Tensor  # (G, N)
    nfe: int
    sigma: float


def split_gibbs_smc_particles(op, prior, y: torch.Tensor, sigma_y: float, num_particles: int, *,
                              generator: torch.Generator, steps: int = 100, start: float = 2.5,
                              start_sweeps: int = 30, final_sweeps: int = 20, level_steps: int = 10,
                              ess_threshold: float = 0.5, rho_fraction: float = 0.9, chebyshev_degree: int = 12,
                              top: float | None = None, init: torch.Tensor | None = None,
                              name: str = "split_gibbs_smc", progress: bool = False,
                              callback: Callable | None = None) -> dict:
    """The particle system for ``G`` measurements at once: ``y: (G, *out_shape)`` (one cloud of
    ``num_particles`` per measurement; the clouds share every network call, but not their weights).

    Returns a dict: ``x`` ``(G, N, *event)`` equally weighted draws, ``nfe`` (network calls per particle),
    ``log_weight_var`` (per level, the mean over clouds of the incremental log-weight variance),
    ``ess`` (per level, the mean ESS fraction after reweighting), ``resampled`` (per level, the fraction of
    clouds resampled), ``sigmas`` and ``rho`` (the final coupling).
    """
    event = tuple(prior.event_shape)
    dtype = y.real.dtype if y.is_complex() else y.dtype
    g, n = y.shape[0], int(num_particles)
    if top is None:
        top = 1.01 * operator_norm_squared(op, torch.zeros(1, *event, dtype=dtype, device=y.device),
                                           generator=generator)
    y_rep = y.repeat_interleave(n, 0)
    if init is None:
        x = op.pinv(y).real.to(dtype).repeat_interleave(n, 0).clone()
    else:
        x = init.to(dtype).reshape(g * n, *event).clone()
    sigmas = sigma_ladder(sigma_y, start, steps)
    log_var: list[float] = []
    ess_frac: list[float] = []
    resampled: list[float] = []

    def residual(x_: torch.Tensor) -> torch.Tensor:  # ||y - A x||^2 per particle, (G, N)
        r = y_rep - op(x_)
        r = torch.view_as_real(r) if r.is_complex() else r
        return (r.to(torch.float64) ** 2).reshape(g, n, -1).sum(-1)

    def resample(state: _State, which: torch.Tensor) -> _State:
        if not bool(which.any()):
            return state
        idx = systematic_resample(state.log_w, generator)
        keep = torch.arange(n, device=idx.device).expand(g, n)
        idx = torch.where(which[:, None], idx, keep)
        flat = (idx + n * torch.arange(g, device=idx.device)[:, None]).reshape(-1).to(state.x.device)
        log_w = torch.where(which[:, None], torch.zeros_like(state.log_w), state.log_w)
        return state._replace(x=state.x[flat], z=state.z[flat], log_w=log_w)

    def step(state: _State, level) -> _State:
        kind, sigma, max_steps = level
        if kind == "move":
            log_w = state.log_w
        else:  # reweight pi_{k-1} -> pi_k at the current x, resample if needed, then move at sigma_k
            inc = -0.5 * residual(state.x) * (1 / sigma**2 - 1 / state.sigma**2)
            log_var.append(float(inc.var(1).mean()))
            log_w = state.log_w + inc
            frac = effective_sample_size(log_w) / n
            ess_frac.append(float(frac.mean()))
            which = frac < ess_threshold if kind == "level" else torch.ones(g, dtype=torch.bool, device=frac.device)
            resampled.append(float(which.double().mean()))
            state = resample(state._replace(log_w=log_w), which)
            log_w = state.log_w
        x, z, calls, _, rho = split_gibbs_sweep(op, prior, state.x, y_rep, sigma, top, rho_fraction,
                                                chebyshev_degree, generator, max_steps)
        return _State(x, z, log_w, state.nfe + calls, sigma)

    plan = ([("move", sigmas[0], level_steps)] * start_sweeps
            + [("level", s, level_steps) for s in sigmas[1:-1]]
            + [("last", sigmas[-1], None)] + [("move", sigmas[-1], None)] * max(final_sweeps - 1, 0))
    state = _State(x, x, torch.zeros(g, n, dtype=torch.float64, device=x.device), 0, sigmas[0])
    state = run_chain(step, state, plan, name=name, progress=progress, estimate=lambda st: st.z, callback=callback)
    rho = rho_fraction * sigma_y / math.sqrt(top)
    return {"x": state.x.reshape(g, n, *event), "nfe": state.nfe, "log_weight_var": log_var, "ess": ess_frac,
            "resampled": resampled, "sigmas": sigmas, "rho": rho}


def sample_split_gibbs_smc(problem: InverseProblem, y: torch.Tensor, *, num_samples: int,
                           generator: torch.Generator, steps: int = 100, start: float = 2.5,
                           start_sweeps: int = 30, final_sweeps: int = 20, level_steps: int = 10,
                           ess_threshold: float = 0.5, rho_fraction: float = 0.9, chebyshev_degree: int = 12,
                           init: torch.Tensor | None = None, progress: bool = False,
                           callback: Callable | None = None) -> Posterior:
    """Split Gibbs SMC posterior samples (module docstring): ``num_samples`` particles in one cloud.

    Parameters
    ----------
    steps : noise levels after the start, ``sigma_y * start^(1 - k/steps)``, ``k = 1..steps``.
    start : ``sigma_0 / sigma_y`` (the first tempered posterior). start_sweeps : sweeps at ``sigma_0`` (prior
        steps of at most ``level_steps`` DDPM steps) before the first reweighting.
    final_sweeps : exact sweeps at ``sigma_y`` (full prior steps) after the last level, the first right after
        the final resampling. level_steps : at most this many DDPM steps in each prior step above ``sigma_y``.
    ess_threshold : resample a cloud when its ESS falls below ``ess_threshold * num_samples``.
    rho_fraction, chebyshev_degree : as in :func:`~bayesinv.samplers.split_gibbs.sample_split_gibbs` (degree 12:
        at ``rho_fraction = 0.9`` the Chebyshev error of the square root is about ``2.5^-12 ~ 1e-5``; the root is
        exact where ``A^T A`` is diagonal in pixels or Fourier).
    init : ``(num_samples, *event_shape)`` start (default ``A^+ y``).
    progress : a progress bar over the sweeps. callback : ``callback(sweep, x, z)`` after every sweep.

    Returns
    -------
    Posterior ``(num_samples, 1, *event_shape)``; ``nfe`` = network calls per particle (= per draw);
    ``extras``: per-level incremental log-weight variance, ESS fraction and resampling.
    """
    name = "split_gibbs_smc"
    clock = Clock()
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator)
    op, noise, prior = check_linear_gaussian(name, problem)
    if not (steps >= 1 and start >= 1 and start_sweeps >= 0 and final_sweeps >= 1 and level_steps >= 1
            and 0 <= ess_threshold <= 1 and 0 < rho_fraction < 1 and chebyshev_degree >= 2):
        raise ValueError(f"{name}: need steps >= 1, start >= 1, start_sweeps >= 0, final_sweeps >= 1, "
                         f"level_steps >= 1, 0 <= ess_threshold <= 1, 0 < rho_fraction < 1, chebyshev_degree >= 2; "
                         f"got {steps}, {start}, {start_sweeps}, {final_sweeps}, {level_steps}, {ess_threshold}, "
                         f"{rho_fraction}, {chebyshev_degree}")
    out = split_gibbs_smc_particles(op, prior, y, float(noise.sigma), num_samples, generator=generator,
                                    steps=steps, start=start, start_sweeps=start_sweeps,
                                    final_sweeps=final_sweeps, level_steps=level_steps, ess_threshold=ess_threshold,
                                    rho_fraction=rho_fraction, chebyshev_degree=chebyshev_degree, init=init,
                                    name=name, progress=progress, callback=callback)
    settings = {"steps": steps, "start": start, "start_sweeps": start_sweeps, "final_sweeps": final_sweeps,
                "level_steps": level_steps, "ess_threshold": ess_threshold, "rho_fraction": rho_fraction,
                "chebyshev_degree": chebyshev_degree, "rho": out["rho"],
                "likelihood_root": likelihood_root_method(op, chebyshev_degree)}
    extras = {k: out[k] for k in ("log_weight_var", "ess", "resampled")}
    return make_posterior(name, out["x"][0][:, None], settings=settings, nfe=out["nfe"], clock=clock,
                          generator=generator, problem=problem, extras=extras)
