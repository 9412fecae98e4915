r"""Score-SDE predictor-corrector sampling with data consistency (Song, Shen, Xing, Ermon 2022, ICLR).

"Solving inverse problems in medical imaging with score-based generative models": the reverse SDE
is run with a predictor-corrector sampler (Song et al. 2021, Alg. 2-5) and, before every predictor
and corrector update, the iterate is pulled toward a noisy copy of the measurement at the current
noise level,

    y_t = alpha_t y + sigma_t A z,          z ~ N(0, I)      (noisy measurement)
    x  <- x + lambda A^+ (y_t - A x)                         (data consistency)

which for an orthonormal transform ``T`` and a subsampling ``Lambda`` (``A = Lambda T``, MRI) is the
paper's ``T^-1[lambda Lambda y_t + (1 - lambda) Lambda T x + (I - Lambda) T x]`` (eq. 9).

The paper's operators have singular values 0 or 1 and its data are nearly noiseless. On a noisy,
ill-conditioned problem (deblurring) ``A^+`` divides the noise by singular values near zero and the
chains diverge. ``cutoff`` generalises ``Lambda`` to any operator with an SVD: ``A^+`` is truncated to
the components with singular value ``s_k > cutoff``, and the others are left to the prior, as the
unmeasured k-space lines are in the paper. The default cutoff ``min(sigma_y / tau, 0.5 s_max)`` keeps the
noise ``sigma_y / s`` that ``A^+`` puts in a measured component below the prior's scale ``tau`` (its root
mean variance where the prior has one; for network priors 0.1 of their ``pixel_range``, i.e. 0.1 for images
in ``[0, 1]``) and never drops the best-measured components. Noiseless data (``sigma_y = 0``) give the paper's
map, and so does any cutoff below ``s_max`` for masks and subsampled Fourier operators (singular values 0 or 1). On one
calibration phantom (phantom32, deblurring std 1.5 px, sigma_y = 0.05, 50 steps, 2 chains) the PSNR of the
mean is 14.8 / 19.4 / 24.1 / 25.2 / 25.6 / 23.4 dB at cutoffs 0.05 / 0.1 / 0.2 / 0.3 / 0.5 / 0.7 (the
default is 0.5; exact ``A^+`` diverges; ``benchmarks/score_sde_cutoff.py``); the Gaussian fit to phantoms
(tau = 0.11) gives 0.45. Operators without an SVD (multi-coil MRI) use the exact ``A^+``. Updates:

* predictor (reverse diffusion), from ``t`` to ``s``: VE ``x <- x + (sigma_t^2 - sigma_s^2) score
  + sqrt(sigma_t^2 - sigma_s^2) z``; VP ``x <- (2 - sqrt(1 - beta)) x + beta score + sqrt(beta) z`` with
  ``beta = 1 - abar_t / abar_s``;
* corrector (Langevin): ``eps = 2 a (snr ||z|| / ||score||)^2``, ``x <- x + eps score + sqrt(2 eps) z``
  (``a = 1 - beta`` for VP, 1 for VE); norms per chain (the authors average them over the batch);
* at the end, the noise is removed by Tweedie's formula (``E[x0 | x_0]``) and, as in the authors'
  code, the measured components are replaced by the measurement (``final_projection``, with the same
  truncated ``A^+``; exact for noiseless data only).

Defaults are the authors' MRI settings (``configs/ve/brats_ncsnpp_continuous.py``): ``snr = 0.517``,
``lambda = coeff = 1``, one corrector step, 1000 noise levels.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior, ve_geometric
>>> prior = GaussianPrior(torch.zeros(2), 1.0, schedule=ve_geometric(30))
>>> problem = InverseProblem(Identity((2,)), Gaussian(0.1), prior)
>>> post = sample_score_sde(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=3,
...                         generator=torch.Generator().manual_seed(0), progress=False)
>>> tuple(post.samples.shape), post.nfe
((3, 1, 2), 60)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from bayesinv._validation import check_number
from bayesinv.operators._spectral import svd_pinv
from bayesinv.operators.base import SVD, LinearOperator
from bayesinv.posterior import Posterior
from bayesinv.priors.schedules import initial_noise, standard_normal, timesteps
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import Clock, check_inputs, draw_in_chunks, make_posterior, run_chain, timestep_bound

__all__ = ["sample_score_sde", "predictor_step", "corrector_step", "data_consistency", "truncated_pinv",
           "ScoreSDEState"]


class ScoreSDEState(NamedTuple):
    """The iterate ``x`` at timestep ``t`` (``-1``: finished) and, after the last step, ``x0_hat``."""

    x: torch.Tensor
    t: int
    x0_hat: torch.Tensor | None = None


def _as_real(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.real if (x.is_complex() and not like.is_complex()) else x


def truncated_pinv(op: LinearOperator, r: torch.Tensor, cutoff: float = 0.0, *, svd: SVD | None = None
                   ) -> torch.Tensor:
    """``A^+ r`` restricted to the components with singular value above ``cutoff`` (exact ``A^+`` at 0).

    Needs the operator's SVD (pass ``svd=op.svd()`` to reuse one) when ``cutoff > 0``.
    """
    if cutoff <= 0:
        return op.pinv(r)
    svd = op.svd() if svd is None else svd
    return svd_pinv(svd, r, op.in_dim, real=not op.input_complex, cutoff=cutoff)


def data_consistency(x: torch.Tensor, t: int, *, op: LinearOperator, y: torch.Tensor, schedule, weight: float,
                     noise: torch.Tensor, cutoff: float = 0.0, svd: SVD | None = None) -> torch.Tensor:
    """``x + lambda A^+ (alpha_t y + sigma_t A z - A x)`` with image-space standard normal ``noise = z``.

    ``cutoff > 0`` truncates ``A^+`` (:func:`truncated_pinv`; module docstring).
    """
    if weight == 0:
        return x
    alpha, sigma = float(schedule.alpha[t]), float(schedule.sigma[t])
    y_t = alpha * y + sigma * op(noise)
    return x + weight * _as_real(truncated_pinv(op, y_t - op(x), cutoff, svd=svd), x)


def predictor_step(state: ScoreSDEState, s: int, *, prior, noise: torch.Tensor) -> ScoreSDEState:
    """Reverse-diffusion predictor from ``state.t`` to ``s`` (VE or VP, see module docstring)."""
    schedule = prior.schedule
    score = prior.score(state.x, state.t)
    if schedule.kind == "ve":
        var = float(schedule.sigma[state.t]) ** 2 - float(schedule.sigma[s]) ** 2
        return ScoreSDEState(state.x + var * score + math.sqrt(max(var, 0.0)) * noise, s)
    beta = 1.0 - float(schedule.alpha[state.t]) ** 2 / float(schedule.alpha[s]) ** 2
    x = (2 - math.sqrt(1 - beta)) * state.x + beta * score + math.sqrt(beta) * noise
    return ScoreSDEState(x, s)


def corrector_step(state: ScoreSDEState, *, prior, snr: float, noise: torch.Tensor) -> ScoreSDEState:
    """One Langevin corrector step with step size set by the signal-to-noise ratio ``snr`` (per chain)."""
    schedule = prior.schedule
    score = prior.score(state.x, state.t)
    if schedule.kind == "ve":
        a = 1.0
    else:
        prev = float(schedule.alpha[state.t - 1]) ** 2 if state.t > 0 else 1.0
        a = float(schedule.alpha[state.t]) ** 2 / prev
    flat = lambda v: v.reshape(v.shape[0], -1).norm(dim=1)  # noqa: E731
    step = 2 * a * (snr * flat(noise) / flat(score).clamp_min(1e-30)) ** 2
    step = step.reshape((-1,) + (1,) * (state.x.ndim - 1))
    return ScoreSDEState(state.x + step * score + (2 * step).sqrt() * noise, state.t)


def _default_cutoff(problem: InverseProblem, svd: SVD | None) -> float:
    """``min(sigma_y / tau, 0.5 s_max)`` for a known Gaussian ``sigma_y`` and an operator with an SVD, else 0;
    ``tau`` is the prior's root mean variance, or 0.1 of a network prior's pixel range (module docstring)."""
    sigma = getattr(problem.noise, "sigma", None)
    if svd is None or not isinstance(sigma, float) or svd.singulars.numel() == 0:
        return 0.0
    tau = problem.prior.scale
    return min(sigma / tau, 0.5 * float(svd.singulars.max()))


def sample_score_sde(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None = None,
                     generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                     callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                     snr: float = 0.517, corrector_steps: int = 1, dc_weight: float = 1.0,
                     final_projection: bool = True, cutoff: float | None = None,
                     latents: Mapping[str, Any] | None = None) -> Posterior:
    """Predictor-corrector sampling with data consistency (Song et al. 2022; see module docstring).

    Parameters
    ----------
    problem : linear operator (``pinv`` is used), any schedule (VE or VP), ScorePrior prior.
    steps : number of noise levels (default: all of the schedule's, 1000 in the paper).
    snr : the corrector's signal-to-noise ratio. corrector_steps : Langevin steps per noise level.
    dc_weight : ``lambda`` of the data-consistency step (0 turns the measurement off: the prior's sampler).
    final_projection : replace the measured components by ``y`` after the final denoising.
    cutoff : singular values at or below it count as unmeasured (module docstring); default
        ``min(sigma_y / tau, 0.5 s_max)`` for operators with an SVD and a known ``sigma_y``, else 0 (exact ``A^+``).
    latents : fixed values of operator nuisance latents, if any.

    Returns
    -------
    Posterior with samples ``(num_samples, 1, *event_shape)``; ``nfe = steps * (corrector_steps + 1)``.
    """
    name = "score_sde"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                     bounded_by_schedule=True)
    all_latents = problem.resolve_latents(latents, num_samples, y)
    op = problem.chain_operator(all_latents)
    if not isinstance(op, LinearOperator):
        raise TypeError(f"{name}: data consistency needs a LinearOperator (pinv), got {type(op).__name__}")
    snr = check_number("snr", snr, low=0.0, high=float("inf"), owner=name)
    dc_weight = check_number("dc_weight", dc_weight, low=0.0, high=1.0, owner=name)
    if isinstance(corrector_steps, bool) or not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"{name}: corrector_steps must be a non-negative int, got {corrector_steps!r}")
    svd = op.svd_or_none()
    cutoff = _default_cutoff(problem, svd) if cutoff is None else check_number("cutoff", cutoff, low=0.0,
                                                                                high=float("inf"), owner=name)
    if cutoff > 0 and svd is None:
        raise ValueError(f"{name}: a cutoff > 0 needs an operator with an SVD; got {cutoff} for {type(op).__name__}")
    prior = problem.prior
    schedule = prior.schedule
    ts = timesteps(schedule, steps)
    shape = tuple(prior.event_shape)
    clock = Clock()

    def draw(start: int, n: int):
        def consistent(x, t):
            return data_consistency(x, t, op=op, y=y, schedule=schedule, weight=dc_weight,
                                    noise=standard_normal((n, *shape), generator, y), cutoff=cutoff, svd=svd)

        def step(state: ScoreSDEState, i: int) -> ScoreSDEState:
            t = ts[i]
            for _ in range(corrector_steps):
                state = ScoreSDEState(consistent(state.x, t), t)
                state = corrector_step(state, prior=prior, snr=snr, noise=standard_normal((n, *shape), generator, y))
            state = ScoreSDEState(consistent(state.x, t), t)
            if i + 1 < len(ts):
                return predictor_step(state, ts[i + 1], prior=prior, noise=standard_normal((n, *shape), generator, y))
            x0_hat = prior.denoise(state.x, t)
            x = x0_hat
            if final_projection and dc_weight > 0:
                x = x + _as_real(truncated_pinv(op, y - op(x), cutoff, svd=svd), x)
            return ScoreSDEState(x, -1, x0_hat)

        state = ScoreSDEState(initial_noise(schedule, (n, *shape), generator, y), ts[0])
        state = run_chain(step, state, range(len(ts)), name=name, progress=progress, callback=callback,
                          bound=lambda st: timestep_bound(prior, st.t), detail=lambda old, new: f"timestep {old.t}")
        return state.x[:, None], {}

    samples, _ = draw_in_chunks(num_samples, batch_size, draw)
    settings = {"steps": len(ts), "snr": snr, "corrector_steps": corrector_steps, "dc_weight": dc_weight,
                "final_projection": final_projection, "cutoff": cutoff, "batch_size": batch_size,
                "schedule": schedule.name}
    return make_posterior(name, samples, settings=settings, nfe=len(ts) * (corrector_steps + 1), clock=clock,
                          generator=generator, problem=problem)
