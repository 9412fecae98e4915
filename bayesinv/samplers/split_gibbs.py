r"""Exact split Gibbs: a diffusion prior and a linear-Gaussian likelihood joined by an auxiliary image.

For ``y = A x + sigma_y n`` the auxiliary ``z = x + rho e`` (``e ~ N(0, I)``) and the *noise split*
``y = A z + g``, ``g ~ N(0, sigma_y^2 I - rho^2 A A^T)`` (positive semi-definite for ``rho <= sigma_y / ||A||``)
leave ``p(y | x) = N(y; A x, sigma_y^2 I)`` unchanged, so the ``x``-marginal of the joint
``p(x) N(z; x, rho^2 I) N(y; A z, sigma_y^2 I - rho^2 A A^T)`` is the posterior *exactly*, for any such
``rho`` (the exact data augmentation of Marnissi, Chouzenoux, Benazza-Benyahia, Pesquet 2018, "An auxiliary
variable method for MCMC algorithms in high dimension", Entropy; the split Gibbs sampler with a diffusion
prior step is PnP-DM, Wu, Sun, Chen, Zhang, Yue, Bouman 2024, NeurIPS, there with an annealed, asymptotically
exact split). Gibbs sweeps alternate the two conditionals:

* likelihood step (exact, no inverse): ``z | x, y ~ N(x + (rho^2/sigma_y^2) A^T (y - A x),
  rho^2 (I - (rho^2/sigma_y^2) A^T A))``; the square root ``(I - c A^T A)^{1/2}`` is applied as a Chebyshev
  polynomial in ``A^T A`` on ``[0, ||A||^2]`` (``||A||`` by power iteration, ``rho = 0.9 sigma_y/||A||`` at
  most, so the polynomial converges geometrically);
* prior step: ``x | z ∝ p(x) N(z; x, rho^2 I)`` is the denoising posterior at noise level ``rho``: with
  ``rho = sigma_t / alpha_t`` for a schedule timestep ``t`` (the largest with ``rho`` below the bound) it is
  ``p(x0 | x_t = alpha_t z)``, drawn by DDPM ancestral steps (Ho et al. 2020, variance ``beta_t``) from ``t``
  down to 0 and the denoiser's mean at the last. This step is where the sampler is not exact: with the
  ~10 timesteps below ``rho`` its per-pixel spread is 0.96 of the exact one on the 32x32 lesion-mixture prior
  (``python benchmarks/exact_images.py prior-step``).

Chains are brought to the posterior's modes by a tempered start: ``anneal_sweeps`` sweeps with ``sigma_y``
replaced by ``sigma_y * anneal_start^(1 - k / anneal_sweeps)`` (each sweep exact for that tempered posterior
but with coarser prior steps), before the exact sweeps.

The prior step costs ``t + 1`` network calls (about 10 for ``sigma_y = 0.05`` on the 1000-step linear VP
schedule); the defaults (40 tempered sweeps of at most 10 calls, 100 exact sweeps) take about 1400 calls.
Chains start at ``A^+ y`` and return their state after ``burn_in`` sweeps and then every ``thin`` sweeps
(``num_draws`` per chain).

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior, vp_linear
>>> prior = GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(200))
>>> problem = InverseProblem(Identity((2,)), Gaussian(0.5), prior)
>>> post = sample_split_gibbs(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=3, steps=5,
...                           generator=torch.Generator().manual_seed(0), progress=False)
>>> tuple(post.samples.shape)
(3, 1, 2)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from bayesinv.noise import Gaussian
from bayesinv.operators.base import LinearOperator
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.priors.base import ScorePrior

__all__ = ["sample_split_gibbs", "operator_norm_squared", "split_noise_level"]


def operator_norm_squared(operator: LinearOperator, like: torch.Tensor, *, iterations: int = 100,
                          generator: torch.Generator | None = None) -> float:
    """``||A||^2``, the largest eigenvalue of ``A^T A``, by power iteration (``like``: one input, batch 1)."""
    v = torch.randn(like.shape, generator=generator, dtype=like.dtype)
    value = 0.0
    for _ in range(iterations):
        v = v / v.norm()
        w = operator.normal(v)
        new = float((v * w).sum())
        v = w
        if abs(new - value) <= 1e-10 * max(abs(new), 1e-300):
            break
        value = new
    return max(new, 0.0)


def split_noise_level(schedule, bound: float) -> int:
    """The largest timestep ``t`` with ``sigma_t / alpha_t <= bound``."""
    levels = schedule.sigma / schedule.alpha
    ok = (levels <= bound).nonzero()
    if ok.numel() == 0:
        raise ValueError(f"split_gibbs: sigma_y / ||A|| leaves rho <= {bound:.3g}, below the schedule's lowest "
                         f"noise level {float(levels[0]):.3g}; use a finer schedule")
    return int(ok.max())


def _chebyshev_sqrt(normal: Callable, v: torch.Tensor, c: float, top: float, degree: int) -> torch.Tensor:
    """``(I - c A^T A)^{1/2} v`` by Clenshaw's recurrence on ``[0, top]`` (``c * top < 1``)."""
    coeffs = np.polynomial.chebyshev.chebinterpolate(lambda s: np.sqrt(1 - c * top * (s + 1) / 2), degree)

    def mapped(u):  # the matrix (2 B / top - I) applied to u
        return 2 * normal(u) / top - u

    b1 = torch.zeros_like(v)
    b2 = torch.zeros_like(v)
    for k in range(degree, 0, -1):
        b1, b2 = float(coeffs[k]) * v + 2 * mapped(b1) - b2, b1
    return float(coeffs[0]) * v + mapped(b1) - b2


def _prior_step(prior, z: torch.Tensor, t_split: int, generator: torch.Generator,
                max_steps: int | None = None) -> torch.Tensor:
    """A draw of ``p(x0 | x_t = alpha_t z)``: DDPM ancestral steps ``t_split -> 0`` (every timestep, or
    ``max_steps`` evenly spaced ones), then the denoiser's mean; returns it and the number of network calls."""
    sched = prior.schedule
    abar = sched.alpha**2
    x = sched.alpha[t_split] * z
    num = t_split + 1 if max_steps is None else min(t_split + 1, int(max_steps))
    ts = torch.linspace(t_split, 0, num).round().long().unique_consecutive().tolist() if num > 1 else [t_split]
    if ts[-1] != 0:
        ts.append(0)
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        x0_hat = prior.denoise(x, t)
        beta = float(1 - abar[t] / abar[s])
        one_minus = float(1 - abar[t])
        coef0 = float(abar[s].sqrt()) * beta / one_minus
        coeft = math.sqrt(1 - beta) * float(1 - abar[s]) / one_minus
        var = beta  # Ho et al.'s sigma^2 = beta (beta~ under-disperses the broad directions at these few steps)
        x = coef0 * x0_hat + coeft * x + math.sqrt(var) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return prior.denoise(x, 0), len(ts)


def _gibbs_sweep(op, prior, x, y, sigma, top, rho_fraction, degree, generator, max_steps=None):
    """One exact split Gibbs sweep for the likelihood ``N(y; A x, sigma^2 I)``.

    Returns ``(x, z, network calls, t, rho)``."""
    t_split = split_noise_level(prior.schedule, rho_fraction * sigma / math.sqrt(max(top, 1e-300)))
    rho = float(prior.schedule.sigma[t_split] / prior.schedule.alpha[t_split])
    c = rho**2 / sigma**2
    dtype = x.dtype
    noise_draw = torch.randn(x.shape, generator=generator, dtype=dtype)
    z = x + c * op.adjoint(y - op(x)).real.to(dtype) + rho * _chebyshev_sqrt(
        lambda u: op.normal(u).real.to(dtype), noise_draw, c, top, degree)
    x, calls = _prior_step(prior, z, t_split, generator, max_steps)
    return x, z, calls, t_split, rho


def sample_split_gibbs(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, generator: torch.Generator,
                       steps: int = 100, burn_in: int | None = None, thin: int = 10, num_draws: int = 1,
                       rho_fraction: float = 0.9, chebyshev_degree: int = 40, init: torch.Tensor | None = None,
                       anneal_sweeps: int = 40, anneal_start: float = 6.0, anneal_steps: int = 10,
                       progress: bool = False, callback: Callable | None = None) -> Posterior:
    """Exact split Gibbs posterior samples (module docstring): ``num_samples`` chains.

    Parameters
    ----------
    steps : exact Gibbs sweeps per chain after the tempered start. burn_in : sweeps up to and including the
        first kept draw (default ``steps - thin * (num_draws - 1)``). thin : sweeps between kept draws.
        num_draws : draws per chain.
    rho_fraction : ``rho <= rho_fraction * sigma_y / ||A||`` (below 1, so the Chebyshev square root converges).
    chebyshev_degree : degree of the polynomial for ``(I - c A^T A)^{1/2}``.
    init : ``(num_samples, *event_shape)`` start (default ``A^+ y``).
    anneal_sweeps, anneal_start, anneal_steps : the tempered start (module docstring): ``anneal_sweeps`` sweeps
        for the noise level ``sigma_y * anneal_start^(1 - k/anneal_sweeps)``, prior steps of at most
        ``anneal_steps`` DDPM steps (they only have to bring the chains near the posterior's modes).
    progress : accepted for the common sampler signature (no progress bar). callback : ``callback(sweep, z, x)``.

    Returns
    -------
    Posterior ``(num_samples, num_draws, *event_shape)``; ``nfe`` = network calls per returned draw.
    """
    name = "split_gibbs"
    start = time.perf_counter()
    if not isinstance(problem, InverseProblem) or not isinstance(problem.prior, ScorePrior):
        raise TypeError(f"{name}: problem must be an InverseProblem with a ScorePrior")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name}: generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1 or steps < 1:
        raise ValueError(f"{name}: num_samples and steps must be positive ints, got {num_samples!r}, {steps!r}")
    y = problem.check_measurement(y.detach())
    if y.shape[0] != 1:
        raise ValueError(f"{name}: y must hold one measurement (batch 1), got shape {tuple(y.shape)}")
    op, noise, prior = problem.operator, problem.noise, problem.prior
    if not isinstance(op, LinearOperator) or not isinstance(noise, Gaussian) or noise.sigma is None \
            or problem.nuisance:
        raise TypeError(f"{name}: needs a LinearOperator, Gaussian noise of known sigma and no latents; got "
                        f"{type(op).__name__}, {noise!r}, latents {sorted(problem.nuisance)}")
    burn_in = steps - thin * (num_draws - 1) if burn_in is None else int(burn_in)
    if not (num_draws >= 1 and thin >= 1 and 1 <= burn_in and burn_in + thin * (num_draws - 1) <= steps):
        raise ValueError(f"{name}: need num_draws >= 1, thin >= 1 and 1 <= burn_in, burn_in + thin (num_draws - 1) "
                         f"<= steps; got {num_draws}, {thin}, {burn_in}, {steps}")
    if not (0 < rho_fraction < 1 and chebyshev_degree >= 2 and anneal_sweeps >= 0 and anneal_start >= 1
            and anneal_steps >= 1):
        raise ValueError(f"{name}: need 0 < rho_fraction < 1, chebyshev_degree >= 2, anneal_sweeps >= 0, "
                         f"anneal_start >= 1, anneal_steps >= 1")
    dtype = y.real.dtype if y.is_complex() else y.dtype
    sigma_y = float(noise.sigma)
    event = tuple(prior.event_shape)
    top = 1.01 * operator_norm_squared(op, torch.zeros(1, *event, dtype=dtype), generator=generator)
    x = op.pinv(y).real.to(dtype).expand(num_samples, *event).clone() if init is None else init.to(dtype).clone()
    total_nfe = 0
    for k in range(anneal_sweeps):  # tempered start: noise sigma_y * anneal_start -> sigma_y, geometric
        level = sigma_y * anneal_start ** (1 - k / anneal_sweeps)
        x, _, nfe, _, _ = _gibbs_sweep(op, prior, x, y, level, top, rho_fraction, chebyshev_degree, generator,
                                       anneal_steps)
        total_nfe += nfe
    kept = []
    for sweep in range(steps):
        x, z, nfe, t_split, rho = _gibbs_sweep(op, prior, x, y, sigma_y, top, rho_fraction, chebyshev_degree,
                                               generator)
        total_nfe += nfe
        if not bool(torch.isfinite(x).all()):
            from bayesinv.errors import SamplerDivergence

            raise SamplerDivergence(f"{name}: non-finite iterate at sweep {sweep}")
        if callback is not None:
            callback(sweep, z, x)
        if sweep + 1 >= burn_in and (sweep + 1 - burn_in) % thin == 0 and len(kept) < num_draws:
            kept.append(x.clone())
    samples = torch.stack(kept, 1)
    nfe = math.ceil(total_nfe / num_draws)
    settings = {"steps": steps, "burn_in": burn_in, "thin": thin, "num_draws": num_draws, "rho": rho,
                "t_split": t_split, "anneal_sweeps": anneal_sweeps, "anneal_start": anneal_start,
                "anneal_steps": anneal_steps, "rho_fraction": rho_fraction, "chebyshev_degree": chebyshev_degree}
    return Posterior(samples.detach(), sampler=name, settings=settings, nfe=nfe,
                     wall_time=time.perf_counter() - start,
                     seed=int(generator.initial_seed()),
                     problem={"name": problem.name, "operator": repr(op), "noise": repr(noise),
                              "prior": type(prior).__name__, "latents": []})
