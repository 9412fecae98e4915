"""The one driver every sampler runs its chains with (as numpyro's driver runs its kernels).

A sampler file holds its update rule as a pure step function over a small NamedTuple state; this module
holds everything around it, once:

* :func:`check_inputs`: the problem, ``y``, ``num_samples``, ``steps`` and ``generator`` of every sampler;
* :func:`run_chain`: the loop over steps: the step, :func:`~bayesinv._validation.guard` (a NaN met by an
  operator inside a step becomes :class:`~bayesinv.errors.SamplerDivergence` naming the step), the divergence
  check at the step boundary (NaN/inf, or an iterate far outside the prior's range: :func:`divergence_bound`),
  the callback and the progress bar;
* :func:`draw_in_chunks`: chains drawn ``batch_size`` at a time. Ctrl-C (``KeyboardInterrupt``) propagates
  unchanged: a partial set of chains is never returned as if it were the result;
* :func:`make_posterior`: the :class:`~bayesinv.posterior.Posterior` with the sampler's metadata.

Several cases in one call (a sampler's ``*_cases`` function, :data:`~bayesinv.samplers.CASE_SAMPLERS`): ``y`` of
shape ``(G, *out_shape)`` holds ``G`` measurements of the same problem, and the ``G * num_samples`` chains run
as one batch, case-major (chain ``c`` belongs to case ``c // num_samples``), so every network call serves all
``G`` cases. :func:`case_measurements` gives a chunk's chains their measurements and :func:`case_posteriors`
splits the result into one :class:`~bayesinv.posterior.Posterior` per case. With ``G = 1`` a ``*_cases``
function draws exactly what the single-case sampler draws (the same generator calls in the same order).

Divergence: NaN/inf at any step boundary. And once the noise is below the signal (``sigma_t / alpha_t <= span``),
an iterate ``x_t = alpha_t x0 + sigma_t eps`` (``alpha = 1``, ``sigma`` = the noise level for data-scale samplers)
must stay within ``DIVERGENCE_FACTOR * (alpha_t span + sigma_t)`` of ``alpha_t c``, where ``(lo, hi)`` is the
prior's :attr:`~bayesinv.priors.base.ScorePrior.value_range`, ``c = (lo + hi) / 2`` and ``span = hi - lo``.
A Gaussian noise draw exceeds ten standard deviations with probability ~1e-23 per pixel, so a healthy chain never
trips it; DPS with ``guidance_scale=1e8`` or ULA with ``step_size=1e3`` does. At higher noise the range is not
checked: there DPS's guided iterates on phantom32 stray to 15-65 times the noise std in the first steps and
recover (``python benchmarks/samplers_phantom.py --quick``).

>>> import torch
>>> from bayesinv.priors import GaussianPrior
>>> divergence_bound(GaussianPrior(torch.zeros(2), 1.0))
(0.0, 80.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

from bayesinv._validation import check_step, check_tensor, guard
from bayesinv.errors import ShapeError
from bayesinv.operators.base import finite_checks
from bayesinv.posterior import Posterior
from bayesinv.priors.base import ScorePrior
from bayesinv.problem import InverseProblem

__all__ = ["check_inputs", "subset_latents", "run_chain", "divergence_bound", "timestep_bound", "DIVERGENCE_FACTOR",
           "progress_bar", "draw_in_chunks", "make_posterior", "case_measurements", "case_posteriors", "Clock"]

State = TypeVar("State")

#: how many prior spans (and noise standard deviations) an iterate may stray before it counts as diverged
DIVERGENCE_FACTOR = 10.0


def check_inputs(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                 generator: torch.Generator, need_score_prior: bool = True,
                 bounded_by_schedule: bool = False, cases: bool = False) -> torch.Tensor:
    """Validate the common arguments of a sampler and return ``y`` with a leading batch dimension of 1.

    ``bounded_by_schedule``: ``steps`` may not exceed the number of timesteps of the prior's schedule.
    ``cases``: the sampler runs several cases in one call, so ``y`` may hold ``G >= 1`` measurements
    ``(G, *out_shape)`` (returned as they are); otherwise a ``y`` with more than one is refused, naming the
    sampler. Raises ``TypeError``/``ValueError`` naming the argument with the expected and the given value.
    """
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"{name}: problem must be a bayesinv.InverseProblem (or a PyroModelProblem wrapping your "
                        f"own Pyro model), got {type(problem).__name__}")
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
    if y.shape[0] != 1 and not cases:
        raise ShapeError(f"{name}: y must hold one measurement (batch 1), got shape {tuple(y.shape)}; several "
                         f"cases in one call need a sampler that batches cases (bayesinv.samplers.CASE_SAMPLERS), "
                         f"and {name} runs one case per call")
    return y


def case_measurements(y: torch.Tensor, num_samples: int, start: int, n: int) -> torch.Tensor:
    """The measurements of chains ``start .. start + n - 1`` of a several-case call (chain ``c`` belongs to case
    ``c // num_samples``): ``(n, *out_shape)``, or ``y`` itself (batch 1, broadcast) when there is one case.

    >>> y = torch.tensor([[0.0], [1.0]])
    >>> case_measurements(y, 3, 2, 3).flatten().tolist()
    [0.0, 1.0, 1.0]
    """
    if y.shape[0] == 1:
        return y
    index = torch.arange(start, start + n, device=y.device) // num_samples
    return y[index]


def case_posteriors(name: str, samples: torch.Tensor, num_cases: int, *, clock: Clock,
                    extras: Mapping[str, Any] | None = None, **kwargs) -> list[Posterior]:
    """Split ``samples: (num_cases * chains, draws, *event)`` (case-major) into one Posterior per case, each
    with :func:`make_posterior`'s metadata (``kwargs``). Each case's ``wall_time`` is the call's wall time over
    ``num_cases`` (the time per case that study tables average); with more than one case ``extras`` also
    records ``cases_per_call`` and the case's position ``case_in_call``."""
    if samples.shape[0] % num_cases:
        raise ShapeError(f"{name}: {samples.shape[0]} chains do not split into {num_cases} cases")
    per_case = samples.reshape(num_cases, samples.shape[0] // num_cases, *samples.shape[1:])
    posts, wall = [], clock.elapsed / num_cases
    for g in range(num_cases):
        info = dict(extras or {})
        if num_cases > 1:
            info.update(cases_per_call=num_cases, case_in_call=g)
        post = make_posterior(name, per_case[g].clone() if num_cases > 1 else per_case[g], clock=clock,
                              extras=info, **kwargs)
        post.wall_time = wall
        posts.append(post)
    return posts


def subset_latents(latents: Mapping[str, torch.Tensor], index) -> dict[str, torch.Tensor]:
    """The latent values of the chains selected by ``index`` (a slice or an index tensor)."""
    return {k: v[index] for k, v in latents.items()}


def divergence_bound(prior, alpha: float = 1.0, noise_std: float = 0.0, *,
                     level: float | None = None) -> tuple[float, float | None]:
    """``(centre, radius)`` that an iterate ``alpha x0 + noise_std eps`` may not leave (module docstring);
    radius ``None`` (no range check) when there is no prior with a ``value_range`` or when the noise level
    (``level``, default ``noise_std``) exceeds ``alpha`` times the prior's span."""
    if not isinstance(prior, ScorePrior):
        return 0.0, None
    lo, hi = prior.value_range
    centre, span = (lo + hi) / 2, hi - lo
    if (noise_std if level is None else level) > alpha * span:  # noise above the signal: only NaN/inf are checked (module docstring)
        return alpha * centre, None
    return alpha * centre, alpha * DIVERGENCE_FACTOR * span + DIVERGENCE_FACTOR * noise_std


def timestep_bound(prior, t: int) -> tuple[float, float | None]:
    """:func:`divergence_bound` of a diffusion iterate ``x_t`` at timestep ``t`` (``t < 0``: the clean image)."""
    if t < 0 or not isinstance(prior, ScorePrior):
        return divergence_bound(prior)
    return divergence_bound(prior, float(prior.schedule.alpha[t]), float(prior.schedule.sigma[t]))


def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm progress bar over ``total`` steps (a silent one when ``enabled`` is False)."""
    return tqdm(total=total, disable=not enabled, desc=desc, leave=False, dynamic_ncols=True)


class _Shared:
    """A bar owned by the caller (one bar over several chunks): used as a context, it is not closed."""

    def __init__(self, bar):
        self.bar = bar

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc):
        return False


def run_chain(step: Callable[[State, Any], State], state: State, steps: Sequence | Iterable, *, name: str,
              iterate: Callable[[State], torch.Tensor] = lambda s: s.x,
              estimate: Callable[[State], torch.Tensor | None] = lambda s: getattr(s, "x0_hat", None),
              bound: Callable[[State], tuple[float, float | None]] | None = None,
              detail: Callable[[State, State], str] | None = None,
              progress: bool | tqdm = False, callback: Callable | None = None,
              on_step: Callable[[int, State], None] | None = None) -> State:
    """Run ``state = step(state, s)`` for each ``s`` in ``steps``; the loop tail of every sampler.

    After each step: :func:`~bayesinv._validation.check_step` on ``iterate(state)`` (NaN/inf, and when
    ``bound(state) = (centre, radius)`` is given, ``max |x - centre| > radius``), raising
    :class:`~bayesinv.errors.SamplerDivergence` that names step ``i`` (``detail(old, new)`` adds context and
    the previous iterate is kept as ``last_good``); then ``on_step(i, state)`` (sampler bookkeeping),
    ``callback(i, iterate(state), estimate(state))`` and one tick of the progress bar (``progress``: a bool,
    or a bar shared across chunks). Inside the loop the operators' own per-call NaN/inf checks are switched
    off (:func:`~bayesinv.operators.base.finite_checks`): the check after each step covers them.
    """
    steps = list(steps)
    context = _Shared(progress) if isinstance(progress, tqdm) else progress_bar(len(steps), bool(progress), name)
    # finiteness is checked here, once per step; the operators' per-call checks (a host sync each) are off
    with context as bar, finite_checks(False):
        for i, s in enumerate(steps):
            last = iterate(state)
            with guard(name, i, last_good=last):
                new = step(state, s)
            centre, radius = bound(new) if bound is not None else (0.0, None)
            check_step(name, i, iterate(new), last_good=last, detail=detail(state, new) if detail else "",
                       centre=centre, radius=radius)
            state = new
            if on_step is not None:
                on_step(i, state)
            if callback is not None:
                callback(i, iterate(state), estimate(state))
            bar.update(1)
    return state


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

    ``draw`` returns ``(samples, extras)`` with ``samples: (n, ...)``; the per-chunk extras are returned as a
    list. ``KeyboardInterrupt`` (Ctrl-C) propagates: an interrupted run returns nothing, so no caller can take
    a partial set of chains for a finished result.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    size = num_samples if batch_size is None else batch_size
    outs, extras = [], []
    for start in range(0, num_samples, size):
        samples, info = draw(start, min(size, num_samples - start))
        outs.append(samples.detach())
        extras.append(info)
    return torch.cat(outs, 0), extras


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
                     wall_time=clock.elapsed, seed=int(generator.initial_seed()), problem=problem.describe(),
                     extras=dict(extras or {}))
