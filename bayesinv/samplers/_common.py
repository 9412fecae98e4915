"""Machinery shared by every posterior sampler, written once.

A sampler file holds only its update rule; everything else lives here:

* input checks (:func:`check_inputs`): the problem, ``y``, ``num_samples``, ``steps``, ``generator``;
* fixed latent values (:func:`resolve_latents`) for noise latents (an unknown sigma) and operator
  nuisance latents (a blur width), so that Gaussian, Poisson and latent-noise problems all work;
* the likelihood, read from the model by :meth:`InverseProblem.log_likelihood` and differentiated by
  autograd (:func:`log_likelihood`, :func:`grad_log_likelihood`), so complex measurements (MRI) and
  nonlinear operators need nothing special;
* schedule helpers: descending timesteps and the ancestral (DDPM/SMLD) transition
  ``q(x_s | x_t, x0)`` between any two timesteps (:func:`ancestral_coefficients`);
* chunking over the batch (:func:`draw_in_chunks`), the progress bar, the divergence check
  (:func:`check_step`) and the :class:`~bayesinv.posterior.Posterior` (:func:`make_posterior`).

The ancestral transition: with ``x_t = alpha_t x0 + sigma_t eps`` and ``s < t`` (``s = -1`` is the
clean image: ``alpha = 1``, ``sigma = 0``), ``x_t | x_s ~ N(a x_s, sigma_{t|s}^2)`` with
``a = alpha_t / alpha_s`` and ``sigma_{t|s}^2 = sigma_t^2 - a^2 sigma_s^2``, and

    q(x_s | x_t, x0) = N( a sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x0,
                          sigma_{t|s}^2 sigma_s^2 / sigma_t^2 ),

which is Ho et al. (2020) eq. 6-7 for consecutive VP steps and SMLD's ancestral step for VE.

>>> from bayesinv.priors.schedules import vp_linear
>>> s = vp_linear(10)
>>> c = ancestral_coefficients(s, 5, 4)
>>> beta = float(s.betas[5]); abar = s.alphas_cumprod
>>> abs(c.variance - beta * float(1 - abar[4]) / float(1 - abar[5])) < 1e-12
True
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from bayesinv._validation import check_tensor
from bayesinv.errors import NonFiniteError, SamplerDivergence, ShapeError
from bayesinv.noise import Gaussian, as_real_view
from bayesinv.operators.base import LinearOperator, Operator
from bayesinv.posterior import Posterior
from bayesinv.priors.base import ScorePrior
from bayesinv.priors.schedules import Schedule
from bayesinv.problem import InverseProblem

__all__ = ["check_inputs", "resolve_latents", "log_likelihood", "grad_log_likelihood", "gaussian_noise_std",
           "operator_at", "timesteps", "ancestral_coefficients", "AncestralCoefficients", "initial_noise",
           "randn", "subset_latents", "squared_residual", "inflated_gaussian_log_likelihood", "check_step", "guard",
           "progress_bar", "draw_in_chunks", "make_posterior", "describe_problem",
           "operator_norm_squared", "Clock"]


# -- inputs ------------------------------------------------------------------------------------------
def check_inputs(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                 generator: torch.Generator, need_score_prior: bool = True,
                 bounded_by_schedule: bool = False) -> torch.Tensor:
    """Validate the common arguments of a sampler and return ``y`` with a leading batch dimension of 1.

    ``bounded_by_schedule``: ``steps`` may not exceed the number of timesteps of the prior's schedule.

    Raises ``TypeError``/``ValueError`` naming the argument with the expected and the given value.
    """
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"{name}: problem must be a bayesinv.InverseProblem, got {type(problem).__name__}")
    if need_score_prior and not isinstance(problem.prior, ScorePrior):
        raise TypeError(f"{name}: problem.prior must be a ScorePrior (denoise/score/schedule), "
                        f"got {type(problem.prior).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name}: generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
                        f"got {type(generator).__name__}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"{name}: num_samples must be a positive int, got {num_samples!r}")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{name}: steps must be a positive int, got {steps!r}")
        max_steps = problem.prior.schedule.num_steps if bounded_by_schedule else None
        if max_steps is not None and steps > max_steps:
            raise ValueError(f"{name}: steps must be at most the schedule's {max_steps} timesteps, got {steps}")
    check_tensor("y", y)
    y = problem.check_measurement(y)
    if y.shape[0] != 1:
        raise ShapeError(f"{name}: y must hold one measurement (batch 1), got shape {tuple(y.shape)}")
    return y


def resolve_latents(problem: InverseProblem, latents: Mapping[str, Any] | None, batch: int,
                    like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Fixed values of the problem's latent sites as ``(batch,)`` tensors.

    Every name in ``problem.latent_names`` (noise latents such as ``sigma``, operator nuisance latents)
    needs a value; scalars and ``(1,)`` tensors are broadcast to the batch.
    """
    latents = dict(latents or {})
    missing = sorted(set(problem.latent_names) - set(latents))
    if missing:
        raise ValueError(f"this problem has latent site(s) {missing}; pass their values with "
                         f"latents={{{', '.join(repr(k) + ': ...' for k in missing)}}}")
    unknown = sorted(set(latents) - set(problem.latent_names))
    if unknown:
        raise ValueError(f"latents {unknown} are not latent sites of this problem (it has {problem.latent_names})")
    out = {}
    dtype = like.real.dtype if like.is_complex() else like.dtype
    for key, value in latents.items():
        value = torch.as_tensor(value, dtype=dtype, device=like.device)
        if value.ndim == 0 or value.shape == (1,):
            value = value.reshape(()).expand(batch)
        elif value.shape != (batch,):
            raise ShapeError(f"latent {key!r} must be a scalar or have shape ({batch},), got {tuple(value.shape)}")
        out[key] = value
    return out


def subset_latents(latents: Mapping[str, torch.Tensor], index) -> dict[str, torch.Tensor]:
    """The latent values of the chains selected by ``index`` (a slice or an index tensor)."""
    return {k: v[index] for k, v in latents.items()}


def operator_at(problem: InverseProblem, latents: Mapping[str, torch.Tensor]) -> Operator:
    """The operator with the nuisance values of ``latents`` (the first chain's, which must be shared)."""
    if not problem.nuisance:
        return problem.operator
    return problem.operator_at(**{k: latents[k][0] for k in problem.nuisance})


def log_likelihood(problem: InverseProblem, x: torch.Tensor, y: torch.Tensor,
                   latents: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``log p(y | x, latents)`` per chain ``(B,)`` from the Pyro model; differentiable in ``x``."""
    return problem.log_likelihood(x, y, **latents)


def grad_log_likelihood(problem: InverseProblem, x: torch.Tensor, y: torch.Tensor,
                        latents: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p(y|x), grad_x log p(y|x))`` by autograd through the model (any noise, any operator)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        ll = problem.log_likelihood(x, y, **latents)
        (grad,) = torch.autograd.grad(ll.sum(), x)
    return ll.detach(), grad


#: the scale of a prior without an explicit variance (a network prior), as a fraction of its pixel range
#: (phantom32's training images: root mean pixel variance 0.110 in [0, 1], ``python benchmarks/phantoms.py``)
NETWORK_SCALE_FRACTION = 0.1


def pixel_span(prior) -> float | None:
    """``hi - lo`` of the pixel range of a prior without an explicit variance (a network prior's ``pixel_range``;
    ``(0, 1)`` when it declares none), or ``None`` for priors with a variance (the exact testbeds)."""
    try:
        prior.variance
    except NotImplementedError:
        lo, hi = getattr(prior, "pixel_range", (0.0, 1.0))
        return float(hi) - float(lo)
    return None


def prior_scale(prior) -> float:
    """The prior's root mean marginal variance, or ``NETWORK_SCALE_FRACTION`` of the pixel span for priors
    without one (network priors)."""
    span = pixel_span(prior)
    return NETWORK_SCALE_FRACTION * span if span is not None else float(prior.variance.mean().sqrt())


def gaussian_noise_std(problem: InverseProblem, latents: Mapping[str, torch.Tensor]) -> torch.Tensor | float | None:
    """The Gaussian noise std (a float, or ``(B,)`` for a latent sigma), or ``None`` for non-Gaussian noise."""
    noise = problem.noise
    if not isinstance(noise, Gaussian):
        return None
    return noise.sigma if noise.sigma is not None else latents["sigma"]


def squared_residual(y: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """``||y - prediction||^2`` per chain ``(B,)`` (complex values count real and imaginary parts)."""
    diff = as_real_view(y - prediction)
    return (diff.reshape(diff.shape[0], -1) ** 2).sum(1)


def inflated_gaussian_log_likelihood(problem: InverseProblem, y: torch.Tensor, x: torch.Tensor,
                                     latents: Mapping[str, torch.Tensor], r2: float) -> torch.Tensor:
    """``log N(y; A x, sigma_y^2 I + r2 A A^H)`` per chain, diagonal in the operator's SVD basis.

    Without an SVD the covariance is ``(sigma_y^2 + r2) I``. Needs Gaussian noise of known sigma. Real
    measurements may have complex singular vectors (circulant blur: ``U = F^H diag(h / |h|)``): the quadratic
    form is then ``sum_k |(U^H r)_k|^2 / var_k``, real and exact since ``U`` is unitary.
    """
    op = operator_at(problem, latents)
    sigma2 = problem.noise.sigma**2
    resid = y - op(x)
    svd = op.svd_or_none() if getattr(op, "linear", False) else None
    if svd is not None:
        coef = svd.Ut(resid)
        sing = svd.singulars.to(device=coef.device, dtype=coef.real.dtype)
        var = torch.full((coef.shape[1],), sigma2, dtype=sing.dtype, device=sing.device)
        var[: sing.shape[0]] += r2 * sing**2
        if y.is_complex():  # real and imaginary parts each carry sigma^2 (the signal part split evenly)
            var2 = var / 2 + sigma2 / 2
            terms = torch.view_as_real(coef) ** 2 / var2[:, None]
            return -0.5 * (terms.reshape(coef.shape[0], -1).sum(1) + 2 * torch.log(2 * math.pi * var2).sum())
        # real y, possibly complex U (the Fourier basis of a circulant blur): Sigma = U diag(var) U^H is real and
        # y^T Sigma^-1 y = sum_k |(U^H y)_k|^2 / var_k exactly, log det Sigma = sum_k log var_k
        power = torch.view_as_real(coef).pow(2).sum(-1) if coef.is_complex() else coef**2
        return -0.5 * ((power / var).sum(1) + torch.log(2 * math.pi * var).sum())
    var = sigma2 + r2
    count = torch.view_as_real(y).numel() if y.is_complex() else y.numel()
    return -squared_residual(y, op(x)) / (2 * var) - 0.5 * count * math.log(2 * math.pi * var)


def operator_norm_squared(op: LinearOperator, like: torch.Tensor, *, generator: torch.Generator,
                          iterations: int = 50) -> float:
    """``||A||^2`` (largest eigenvalue of ``A^H A``) by power iteration from a random start."""
    svd = op.svd_or_none()
    if svd is not None:
        return float(svd.singulars.max()) ** 2
    v = torch.randn((1, *op.in_shape), generator=generator, dtype=torch.float64, device=generator.device)
    v = v.to(like.real.dtype if like.is_complex() else like.dtype)
    v = v / v.norm()
    value = 0.0
    for _ in range(iterations):
        w = op.normal(v)
        value = float(w.abs().norm())
        if value == 0:
            return 0.0
        v = w / value
    return value


# -- schedules -----------------------------------------------------------------------------------------
def timesteps(schedule: Schedule, steps: int | None) -> list[int]:
    """``steps`` timesteps from ``T-1`` down to ``0`` (all ``T`` when ``steps`` is None), descending."""
    num = schedule.num_steps if steps is None else int(steps)
    return [int(t) for t in schedule.spaced_timesteps(num)]


class AncestralCoefficients(NamedTuple):
    """``q(x_s | x_t, x0) = N(coef_xt x_t + coef_x0 x0, variance)`` (see module docstring)."""

    coef_xt: float
    coef_x0: float
    variance: float
    alpha_s: float
    sigma_s: float


def _alpha_sigma(schedule: Schedule, t: int) -> tuple[float, float]:
    if t < 0:
        return 1.0, 0.0
    return float(schedule.alpha[t]), float(schedule.sigma[t])


def ancestral_coefficients(schedule: Schedule, t: int, s: int) -> AncestralCoefficients:
    """Coefficients of the ancestral transition from timestep ``t`` to ``s < t`` (``s = -1``: clean)."""
    if not s < t:
        raise ValueError(f"ancestral step needs s < t, got t={t}, s={s}")
    alpha_t, sigma_t = _alpha_sigma(schedule, t)
    alpha_s, sigma_s = _alpha_sigma(schedule, s)
    a = alpha_t / alpha_s
    var_ts = max(sigma_t**2 - a**2 * sigma_s**2, 0.0)
    return AncestralCoefficients(a * sigma_s**2 / sigma_t**2, alpha_s * var_ts / sigma_t**2,
                                 var_ts * sigma_s**2 / sigma_t**2, alpha_s, sigma_s)


def randn(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws with ``like``'s real dtype and device, from ``generator``."""
    dtype = like.real.dtype if like.is_complex() else like.dtype
    out = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=generator.device)
    return out.to(like.device)


def initial_noise(schedule: Schedule, shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``x_T ~ N(0, (alpha_T^2 + sigma_T^2) I)``: ``N(0, I)`` for VP (Ho et al. 2020), ``~N(0, sigma_max^2)`` for VE."""
    t = schedule.num_steps - 1
    std = math.sqrt(float(schedule.alpha[t]) ** 2 + float(schedule.sigma[t]) ** 2)
    return std * randn(shape, generator, like)


# -- the loop ------------------------------------------------------------------------------------------
def check_step(name: str, step: int, x: torch.Tensor, last_good: torch.Tensor | None = None,
               detail: str = "") -> torch.Tensor:
    """Raise :class:`SamplerDivergence` at the first non-finite iterate; return ``x`` otherwise."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        msg = f"{bad} of {x.numel()} values are NaN/inf"
        raise SamplerDivergence(name, step, f"{msg}; {detail}" if detail else msg,
                                last_good=None if last_good is None else last_good.detach().clone())
    return x


@contextmanager
def guard(name: str, step: int, last_good: torch.Tensor | None = None):
    """Turn a :class:`NonFiniteError` raised inside a step (e.g. an operator given a NaN ``x0_hat``)
    into :class:`SamplerDivergence` naming the sampler and the step."""
    try:
        yield
    except NonFiniteError as err:
        raise SamplerDivergence(name, step, str(err),
                                last_good=None if last_good is None else last_good.detach().clone()) from err


def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm progress bar over ``total`` steps (a silent one when ``enabled`` is False)."""
    return tqdm(total=total, disable=not enabled, desc=desc, leave=False, dynamic_ncols=True)


class Clock:
    """Wall time of a sampler call: ``Clock()`` at the start, ``.elapsed`` at the end."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def draw_in_chunks(num_samples: int, batch_size: int | None,
                   draw: Callable[[int, int], tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Call ``draw(start, n)`` on chunks of at most ``batch_size`` chains; concatenate along dim 0.

    ``draw`` returns ``(samples, extras)`` with ``samples: (n, ...)``; the per-chunk extras are returned
    as a list.

    Ctrl-C (``KeyboardInterrupt``) during a chunk after the first returns the chains of the finished chunks
    with a warning saying how many, so a long run keeps what it sampled; during the first it propagates.
    """
    size = num_samples if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    outs, extras = [], []
    for start in range(0, num_samples, size):
        n = min(size, num_samples - start)
        try:
            samples, info = draw(start, n)
        except KeyboardInterrupt:
            if not outs:
                raise
            warnings.warn(f"interrupted: returning the {start} of {num_samples} chains that finished "
                          f"(chunks of {size})", RuntimeWarning, stacklevel=3)
            break
        outs.append(samples.detach())
        extras.append(info)
    return torch.cat(outs, 0), extras


def describe_problem(problem: InverseProblem) -> dict[str, Any]:
    """A short JSON-serialisable description of the problem for the Posterior's metadata."""
    op = problem._operator if not problem.nuisance else None
    return {"name": problem.name, "operator": repr(op) if op is not None else "factory",
            "noise": repr(problem.noise), "prior": type(problem.prior).__name__,
            "latents": list(problem.latent_names)}


def _jsonable(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.numel() <= 16:
        return value.detach().cpu().tolist()
    return repr(value)


def make_posterior(name: str, samples: torch.Tensor, *, settings: Mapping[str, Any], nfe: int, clock: Clock,
                   generator: torch.Generator, problem: InverseProblem,
                   extras: Mapping[str, Any] | None = None) -> Posterior:
    """Wrap ``samples: (chains, draws, *event)`` with the sampler's metadata."""
    return Posterior(samples.detach(), sampler=name, settings=_jsonable(dict(settings)), nfe=int(nfe),
                     wall_time=clock.elapsed, seed=int(generator.initial_seed()), problem=describe_problem(problem),
                     extras=dict(extras or {}))
