r"""Annealed Langevin dynamics on the posterior (Song & Ermon 2019, Alg. 1; Jalal et al. 2021).

Works on the data scale ``x`` as the rest of the Langevin family (:mod:`bayesinv.samplers.langevin`):

Noise levels ``gamma_1 > ... > gamma_L`` (geometric), ``T`` steps each with step
``eta_i = eps gamma_i^2 / gamma_L^2``,
``x <- x + eta_i (s_prior(x, gamma_i) + grad_x log N(y; A x, (sigma_y^2 + gamma_i^2) I)) + sqrt(2 eta_i) z``;
the noise-inflated likelihood is Jalal et al.'s (``likelihood_inflation="operator"`` uses
``sigma_y^2 I + gamma_i^2 A A^H`` instead, the covariance of ``y - A x_gamma`` under ``x_gamma = x + gamma n``,
which is much closer on the mixture testbed when ``A`` has small singular values). Defaults (Song &
Ermon): ``L = 10``, ``T = 100``, ``eps = 2e-5``. Non-Gaussian noise uses the un-inflated gradient.
Song & Ermon's rule makes ``eta_i / gamma_i^2`` constant, which keeps the *prior* part stable (its score is
``1/gamma_i^2``-Lipschitz); the likelihood adds ``L_y,i = ||A||^2 / (sigma_y^2 + gamma_i^2)`` (``"jalal"``;
``||A||^2 / (sigma_y^2 + gamma_i^2 ||A||^2)`` for ``"operator"``, ``||A||^2 / sigma_y^2`` for ``"none"``), and
the Euler step is unstable once ``eta_i (1/gamma_i^2 + L_y,i) > 2``: with ``||A||^2 ~ 14`` (a random 4 x 8
Gaussian matrix) the default step diverges. So the step is capped, ``eta_i <= 1 / (1/gamma_i^2 + L_y,i)``,
for linear operators with Gaussian noise; with ``||A|| <= 1`` (masks, subsampled Fourier, the mixture
testbed) the cap is inactive at the defaults and the paper's steps are kept.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior, vp_linear
>>> problem = InverseProblem(Identity((2,)), Gaussian(0.5), GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(50)))
>>> post = sample_annealed_langevin(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=3, steps=3,
...                                 steps_per_level=5, generator=torch.Generator().manual_seed(0), progress=False)
>>> tuple(post.samples.shape), post.nfe
((3, 1, 2), 15)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from bayesinv._validation import check_number
from bayesinv.operators.base import LinearOperator, operator_norm_squared
from bayesinv.posterior import Posterior
from bayesinv.priors.schedules import standard_normal
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import (Clock, check_inputs, divergence_bound, draw_in_chunks, make_posterior,
                                       run_chain, subset_latents)
from bayesinv.samplers.langevin import _likelihood_grad, _min_float, data_scale_score

__all__ = ["sample_annealed_langevin", "AnnealedState"]


def _default_levels(prior, levels_all: torch.Tensor) -> tuple[float, float]:
    """The schedule's extreme data-scale levels, the top capped at ``span sqrt(d)`` for network priors (docstring)."""
    hi, lo = float(levels_all.max()), float(levels_all.min())
    span = prior.pixel_span
    if span is not None:
        hi = max(min(hi, span * math.sqrt(math.prod(prior.event_shape))), lo)
    return hi, lo


def sample_annealed_langevin(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int = 10,
                             generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                             callback: Callable | None = None, steps_per_level: int = 100, step_size: float = 2e-5,
                             noise_levels: tuple[float, float] | None = None, likelihood_inflation: str = "jalal",
                             latents: Mapping[str, Any] | None = None) -> Posterior:
    """Annealed Langevin dynamics on the posterior (Song & Ermon 2019; Jalal et al. 2021; module docstring).

    ``steps`` is the number of noise levels ``L``, geometric between ``noise_levels = (max, min)``, each
    mapped to the nearest timestep; chains start at ``gamma_1 z``. Default: the schedule's extremes, except
    that for network priors (no explicit variance; pixels in ``prior.pixel_range``, ``(0, 1)`` by default) the
    top level is capped at ``(hi - lo) sqrt(d)``, the largest possible distance between two such images
    (``sqrt(d)`` for images in ``[0, 1]``): Song & Ermon's (2020) rule ``gamma_1 ~`` the largest distance
    between training images. A VP schedule's top level
    ``sigma_T / alpha_T`` is ~160 (DDPM linear), where chains with few steps per level never equilibrate
    (phantom32 deblurring, 10 x 10 steps: 4.5 dB from 157, 25.1 dB from 32, 26.7 dB from 20:
    ``benchmarks/langevin_start_level.py``; the studies pass ``noise_levels=(20, 0.01)``).
    ``likelihood_inflation``: ``"jalal"`` (``sigma_y^2 + gamma^2``, the paper), ``"operator"``
    (``sigma_y^2 I + gamma^2 A A^H``, diagonal in the operator's SVD basis) or ``"none"``.
    Returns independent chains ``(num_samples, 1, *event_shape)``;
    ``nfe = steps * steps_per_level``.
    """
    name = "annealed_langevin"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator)
    if likelihood_inflation not in ("jalal", "operator", "none"):
        raise ValueError(f"{name}: likelihood_inflation must be 'jalal', 'operator' or 'none', "
                         f"got {likelihood_inflation!r}")
    if isinstance(steps_per_level, bool) or not isinstance(steps_per_level, int) or steps_per_level < 1:
        raise ValueError(f"{name}: steps_per_level must be a positive int, got {steps_per_level!r}")
    step_size = check_number("step_size", step_size, low=0.0, low_open=True, high=float("inf"), owner=name)
    schedule = problem.prior.schedule
    levels_all = schedule.sigma / schedule.alpha
    if noise_levels is not None:
        if len(noise_levels) != 2:
            raise ValueError(f"{name}: noise_levels must be (max, min), got {noise_levels!r}")
        hi = check_number("noise_levels[0]", noise_levels[0], low=0.0, low_open=True, high=float("inf"), owner=name)
        lo = check_number("noise_levels[1]", noise_levels[1], low=0.0, low_open=True, high=hi, owner=name)
    else:
        hi, lo = _default_levels(problem.prior, levels_all)
    targets = torch.exp(torch.linspace(math.log(hi), math.log(lo), steps, dtype=torch.float64, device="cpu"))
    ts = [schedule.timestep_for_noise_level(float(g)) for g in targets]
    gammas = [float(levels_all[t]) for t in ts]
    all_latents = problem.resolve_latents(latents, num_samples, y)
    prior, shape = problem.prior, tuple(problem.prior.event_shape)
    deltas = _annealed_steps(problem, y, all_latents, step_size, gammas, likelihood_inflation)
    clock = Clock()

    def draw(start, n):
        chunk_latents = subset_latents(all_latents, slice(start, start + n))

        def step(state: AnnealedState, k: int) -> AnnealedState:
            level = k // steps_per_level
            t, gamma, delta = ts[level], gammas[level], deltas[level]
            denoised, score = data_scale_score(prior, state.x, t)
            lik = _likelihood_grad(problem, state.x, y, chunk_latents, gamma**2, likelihood_inflation)
            noise = standard_normal(state.x.shape, generator, y)
            return AnnealedState(state.x + delta * (score + lik) + math.sqrt(2 * delta) * noise, level, denoised)

        # the data-scale marginal at gamma_1; chains with few steps per level keep much of that noise for several
        # levels, so the divergence bound allows noise of std gamma_1 throughout
        x = gammas[0] * standard_normal((n, *shape), generator, y)
        state = run_chain(step, AnnealedState(x, 0), range(steps * steps_per_level), name=name, progress=progress,
                          callback=callback, bound=lambda st: divergence_bound(prior, 1.0, gammas[0], level=gammas[st.level]),
                          detail=lambda old, new: f"noise level {gammas[new.level]:.3g}")
        return state.x[:, None], {}

    samples, _ = draw_in_chunks(num_samples, batch_size, draw)
    settings = {"steps": steps, "steps_per_level": steps_per_level, "step_size": step_size,
                "step_sizes": deltas, "noise_levels": [gammas[0], gammas[-1]],
                "likelihood_inflation": likelihood_inflation,
                "batch_size": batch_size, "schedule": schedule.name}
    return make_posterior(name, samples, settings=settings, nfe=steps * steps_per_level, clock=clock,
                          generator=generator, problem=problem)


def _annealed_steps(problem, y, latents, step_size: float, gammas: list[float], inflation: str) -> list[float]:
    """Per-level steps ``eta_i = eps gamma_i^2 / gamma_L^2`` capped at ``1 / (1/gamma_i^2 + L_y,i)`` (module
    docstring) when the likelihood's Lipschitz constant is known (Gaussian noise, linear operator)."""
    sigma = problem.gaussian_noise_std(latents)
    op = problem.chain_operator(latents) if sigma is not None else None
    norm2 = None
    if isinstance(op, LinearOperator):  # a fixed generator: the power iteration leaves the user's stream alone
        norm2 = operator_norm_squared(op, y, generator=torch.Generator(device=y.device).manual_seed(0))
    sigma2 = _min_float(sigma) ** 2 if sigma is not None else 0.0
    steps = []
    for gamma in gammas:
        delta = step_size * gamma**2 / gammas[-1] ** 2
        if norm2 is not None:
            if inflation == "jalal":
                lip_y = norm2 / (sigma2 + gamma**2)
            elif inflation == "operator":
                lip_y = norm2 / (sigma2 + gamma**2 * norm2)
            else:
                lip_y = norm2 / max(sigma2, 1e-300)
            delta = min(delta, 1.0 / (1.0 / gamma**2 + lip_y))
        steps.append(delta)
    return steps


class AnnealedState(NamedTuple):
    """Annealed Langevin chains ``x`` (data scale) at noise level index ``level``, the last denoiser output."""

    x: torch.Tensor
    level: int
    x0_hat: torch.Tensor | None = None
