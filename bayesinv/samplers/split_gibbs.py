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
  rho^2 (I - (rho^2/sigma_y^2) A^T A))``; the square root ``(I - c A^T A)^{1/2}`` is applied exactly where
  ``A^T A`` is diagonal in pixels or Fourier (inpainting, deblurring, single-coil MRI, subsampled Fourier:
  :meth:`~bayesinv.operators.base.LinearOperator.gram_diagonal`, one FFT pair), else as a Chebyshev polynomial
  in ``A^T A`` on ``[0, ||A||^2]`` (``||A||`` by power iteration, ``rho = 0.9 sigma_y/||A||`` at most, so the
  polynomial converges geometrically);
* prior step: ``x | z ∝ p(x) N(z; x, rho^2 I)`` is the denoising posterior at noise level ``rho``: with
  ``rho = sigma_t / alpha_t`` for a schedule timestep ``t`` (the largest with ``rho`` below the bound) it is
  ``p(x0 | x_t = alpha_t z)``, drawn by DDPM ancestral steps (Ho et al. 2020, variance ``beta_t``) from ``t``
  down to 0 and the denoiser's mean at the last. This step is where the sampler is not exact: with the
  ~10 timesteps below ``rho`` its per-pixel spread is 0.96 of the exact one on the 32x32 lesion-mixture prior
  (``python benchmarks/exact_images.py prior-step``).

Chains are brought to the posterior's modes by a tempered start (its proportions of the modes are not corrected
afterwards: :mod:`bayesinv.samplers.split_gibbs_smc` weights them): ``anneal_sweeps`` sweeps with ``sigma_y``
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
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from bayesinv.noise import Gaussian
from bayesinv.operators.base import LinearOperator, gram_function, operator_norm_squared
from bayesinv.posterior import Posterior
from bayesinv.priors.schedules import standard_normal
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import Clock, check_inputs, make_posterior, run_chain

__all__ = ["sample_split_gibbs", "split_noise_level", "SplitGibbsState", "split_gibbs_sweep", "check_linear_gaussian",
           "likelihood_root"]


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


def likelihood_root(op, v: torch.Tensor, c: float, top: float, degree: int) -> torch.Tensor:
    """``(I - c A^T A)^{1/2} v`` for real ``v``: exact through :meth:`~bayesinv.operators.base.LinearOperator.
    gram_diagonal` where the operator has one, else the degree-``degree`` Chebyshev polynomial on ``[0, top]``."""
    gram = op.gram_diagonal()
    if gram is not None:
        return gram_function(gram, lambda s: (1 - c * s).clamp_min(0).sqrt(), v)
    return _chebyshev_sqrt(lambda u: op.normal(u).real.to(v.dtype), v, c, top, degree)


def likelihood_root_method(op, degree: int) -> str:
    """How :func:`likelihood_root` applies the square root for ``op`` (recorded in the samplers' settings)."""
    gram = op.gram_diagonal()
    return f"exact ({gram.basis})" if gram is not None else f"chebyshev (degree {degree})"


def _prior_step(prior, z: torch.Tensor, t_split: int, generator: torch.Generator,
                max_steps: int | None = None) -> torch.Tensor:
    """A draw of ``p(x0 | x_t = alpha_t z)``: DDPM ancestral steps ``t_split -> 0`` (every timestep, or
    ``max_steps`` evenly spaced ones), then the denoiser's mean; returns it and the number of network calls."""
    sched = prior.schedule
    abar = sched.alpha**2
    x = sched.alpha[t_split] * z
    num = t_split + 1 if max_steps is None else min(t_split + 1, int(max_steps))
    grid = torch.linspace(t_split, 0, num, device="cpu")  # host-side timestep indices
    ts = grid.round().long().unique_consecutive().tolist() if num > 1 else [t_split]
    if ts[-1] != 0:
        ts.append(0)
    for t, s in zip(ts[:-1], ts[1:], strict=True):
        x0_hat = prior.denoise(x, t)
        beta = float(1 - abar[t] / abar[s])
        one_minus = float(1 - abar[t])
        coef0 = float(abar[s].sqrt()) * beta / one_minus
        coeft = math.sqrt(1 - beta) * float(1 - abar[s]) / one_minus
        var = beta  # Ho et al.'s sigma^2 = beta (beta~ under-disperses the broad directions at these few steps)
        x = coef0 * x0_hat + coeft * x + math.sqrt(var) * standard_normal(x.shape, generator, x)
    return prior.denoise(x, 0), len(ts)


def split_gibbs_sweep(op, prior, x, y, sigma, top, rho_fraction, degree, generator, max_steps=None):
    """One exact split Gibbs sweep for the likelihood ``N(y; A x, sigma^2 I)``.

    Returns ``(x, z, network calls, t, rho)``."""
    t_split = split_noise_level(prior.schedule, rho_fraction * sigma / math.sqrt(max(top, 1e-300)))
    rho = float(prior.schedule.sigma[t_split] / prior.schedule.alpha[t_split])
    c = rho**2 / sigma**2
    dtype = x.dtype
    noise_draw = standard_normal(x.shape, generator, x)
    z = x + c * op.adjoint(y - op(x)).real.to(dtype) + rho * likelihood_root(op, noise_draw, c, top, degree)
    x, calls = _prior_step(prior, z, t_split, generator, max_steps)
    return x, z, calls, t_split, rho


def check_linear_gaussian(name: str, problem: InverseProblem):
    """``(operator, noise, prior)`` of a problem that the split samplers can run: a linear operator, Gaussian noise
    of known sigma, no latents; a ``TypeError`` naming what is missing otherwise."""
    op, noise = problem.operator, problem.noise
    if not isinstance(op, LinearOperator) or not isinstance(noise, Gaussian) or noise.sigma is None \
            or problem.nuisance:
        raise TypeError(f"{name}: needs a LinearOperator, Gaussian noise of known sigma and no latents; got "
                        f"{type(op).__name__}, {noise!r}, latents {sorted(problem.nuisance)}")
    return op, noise, problem.prior


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
    chebyshev_degree : degree of the polynomial for ``(I - c A^T A)^{1/2}`` where ``A^T A`` is not diagonal in
        pixels or Fourier (elsewhere the root is exact; ``settings["likelihood_root"]`` says which).
    init : ``(num_samples, *event_shape)`` start (default ``A^+ y``).
    anneal_sweeps, anneal_start, anneal_steps : the tempered start (module docstring): ``anneal_sweeps`` sweeps
        for the noise level ``sigma_y * anneal_start^(1 - k/anneal_sweeps)``, prior steps of at most
        ``anneal_steps`` DDPM steps (they only have to bring the chains near the posterior's modes).
    progress : a progress bar over the sweeps. callback : ``callback(sweep, z, x)``.

    Returns
    -------
    Posterior ``(num_samples, num_draws, *event_shape)``; ``nfe`` = network calls per returned draw.
    """
    name = "split_gibbs"
    clock = Clock()
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator)
    op, noise, prior = check_linear_gaussian(name, problem)
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
    top = 1.01 * operator_norm_squared(op, torch.zeros(1, *event, dtype=dtype, device=y.device), generator=generator)
    x = op.pinv(y).real.to(dtype).expand(num_samples, *event).clone() if init is None else init.to(dtype).clone()
    sweep = _sweep_function(op, prior, y, top, rho_fraction, chebyshev_degree, generator)
    state = SplitGibbsState(x, x, 0, -1, 0.0)
    # tempered start: noise sigma_y * anneal_start -> sigma_y (geometric), short prior steps
    levels = [(sigma_y * anneal_start ** (1 - k / anneal_sweeps), anneal_steps) for k in range(anneal_sweeps)]
    state = run_chain(sweep, state, levels, name=name)
    kept: list[torch.Tensor] = []

    def keep(i: int, st: SplitGibbsState) -> None:
        if i + 1 >= burn_in and (i + 1 - burn_in) % thin == 0 and len(kept) < num_draws:
            kept.append(st.x.clone())

    state = run_chain(sweep, state, [(sigma_y, None)] * steps, name=name, progress=progress,
                      estimate=lambda st: st.z, on_step=keep,
                      callback=None if callback is None else lambda i, x_, z_: callback(i, z_, x_))
    settings = {"steps": steps, "burn_in": burn_in, "thin": thin, "num_draws": num_draws, "rho": state.rho,
                "t_split": state.t_split, "anneal_sweeps": anneal_sweeps, "anneal_start": anneal_start,
                "anneal_steps": anneal_steps, "rho_fraction": rho_fraction, "chebyshev_degree": chebyshev_degree,
                "likelihood_root": likelihood_root_method(op, chebyshev_degree)}
    return make_posterior(name, torch.stack(kept, 1), settings=settings, nfe=math.ceil(state.nfe / num_draws),
                          clock=clock, generator=generator, problem=problem)


class SplitGibbsState(NamedTuple):
    """One split Gibbs chain batch: the image ``x``, the auxiliary ``z``, network calls so far, the split's
    timestep and ``rho``."""
    x: torch.Tensor
    z: torch.Tensor
    nfe: int
    t_split: int
    rho: float


def _sweep_function(op, prior, y, top, rho_fraction, degree, generator):
    """``step(state, (noise level, max prior steps)) -> state`` for :func:`~bayesinv.samplers._driver.run_chain`."""
    def step(state: SplitGibbsState, level) -> SplitGibbsState:
        sigma, max_steps = level
        x, z, calls, t_split, rho = split_gibbs_sweep(op, prior, state.x, y, sigma, top, rho_fraction, degree,
                                                      generator, max_steps)
        return SplitGibbsState(x, z, state.nfe + calls, t_split, rho)
    return step
