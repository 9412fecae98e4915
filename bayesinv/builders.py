"""Problems, priors and samplers from names: the one front door of ``bayesinv sample`` and the study runner.

* :func:`resolve_prior` turns a prior name into a prior: ``"phantom-gaussian"`` (the exact Gaussian fit to
  4000 training phantoms, whose posteriors are known in closed form) or a committed model ``models/<name>``.
* :func:`make_problem` builds the :class:`~bayesinv.problem.InverseProblem` of a registry operator on
  ``(1, S, S)`` images with Gaussian noise of std ``noise_sigma``.
* :func:`run_sampler` calls a sampler, a baseline or ``"exact"`` (:func:`~bayesinv.priors.exact.sample_exact`)
  by registry name with the uniform options (``num_samples``, ``steps``, ``generator``, extra options),
  refusing unknown names and options before any work is done (:func:`sampler_function`);
  :func:`run_sampler_cases` runs several cases in one call with a sampler of
  :data:`~bayesinv.samplers.CASE_SAMPLERS` (one Posterior per case).

The studies layer (:mod:`bayesinv.studies`) builds its problems and runs its samplers through these; nothing
here imports the studies layer.

>>> problem = make_problem("denoise", image_size=4, noise_sigma=0.1)
>>> problem.name, tuple(problem.operator.in_shape)
('denoise-4', (1, 4, 4))
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from bayesinv.noise import Gaussian
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem

__all__ = ["resolve_prior", "make_problem", "sampler_registry", "sampler_function", "run_sampler", "run_sampler_cases",
           "case_batching", "check_memory", "physical_memory", "WORKING_COPIES"]

WORKING_COPIES = 3  # iterate, denoised estimate and returned samples, each num_samples x C x H x W in float64


def resolve_prior(name: str, image_size: int = 32):
    """A prior by name: ``phantom-gaussian`` (exact Gaussian fit to training phantoms), ``phantom-lesion-mixture``
    (:meth:`~bayesinv.priors.lesion_mixture.LesionMixturePrior.from_phantoms`: exact, with lesions) or
    ``models/<name>``."""
    if name == "phantom-lesion-mixture":
        from bayesinv.priors.lesion_mixture import LesionMixturePrior

        return LesionMixturePrior.from_phantoms(image_size)
    if name == "phantom-gaussian":
        from bayesinv.data import phantom_dataset
        from bayesinv.priors.gaussian import GaussianPrior

        num = 4000
        data = phantom_dataset("train", num, image_size).images.double().reshape(num, -1)
        mean = data.mean(0)
        cov = torch.cov(data.T) + 1e-4 * torch.eye(data.shape[1], dtype=torch.float64)
        return GaussianPrior(mean.reshape(1, image_size, image_size), cov)
    from bayesinv.priors.hub import load_prior

    return load_prior(name)


def make_problem(operator: str, *, image_size: int, noise_sigma: float, prior=None, seed: int = 0,
                 operator_options: Mapping[str, Any] | None = None) -> InverseProblem:
    """The inverse problem ``y = A x + noise_sigma n`` for the registry operator ``operator`` on ``(1, S, S)`` images.

    ``seed`` draws the operator's random parts (masks, sensing matrices); ``operator_options`` are passed to
    :func:`~bayesinv.operators.make_operator` (which raises ``TypeError`` naming an unknown option).
    """
    from bayesinv.operators import make_operator

    shape = (1, int(image_size), int(image_size))
    op = make_operator(operator, shape, seed=seed, **dict(operator_options or {}))
    return InverseProblem(op, Gaussian(noise_sigma), prior, name=f"{operator}-{int(image_size)}")


def sampler_registry() -> dict[str, Callable[..., Posterior]]:
    """Every sampler by registry name: the diffusion samplers, the baselines and ``"exact"``."""
    from bayesinv.priors.exact import sample_exact
    from bayesinv.samplers import SAMPLERS

    try:
        from bayesinv.samplers.baselines import BASELINES
    except ImportError:  # baselines not installed in this build
        BASELINES = {}
    return {"exact": sample_exact, **BASELINES, **SAMPLERS}


def sampler_function(name: str, options: Mapping[str, Any]) -> Callable[..., Posterior]:
    """The sampler ``name``, after checking that it takes every key of ``options`` with values of the types its
    signature declares (``eta = true`` or ``"0.5"`` for a ``float``, ``max_iter = "10"`` for an ``int``).

    Raises ``ValueError`` naming the valid samplers (unknown name) or the option (unknown option, wrong type).
    Integers are accepted for ``float`` options; booleans are never numbers; options annotated with anything
    but ``float``/``int``/``bool``/``str``/``None`` (tuples, tensors, models) pass unchecked.
    """
    registry = sampler_registry()
    if name not in registry:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(registry)}")
    _check_options(name, registry[name], options)
    return registry[name]


_KINDS = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


def _declared_kinds(param: inspect.Parameter) -> tuple[set[str], bool] | None:
    """``({"float", "int", ...}, None allowed)`` from a parameter's annotation when it is built only from
    float/int/bool/str/None; None (no check) for anything else (tuples, tensors, callables, models)."""
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    tokens = set(re.findall(r"[A-Za-z_][\w.]*", text))
    if not tokens or tokens - {"float", "int", "bool", "str", "None", "Optional"}:
        return None
    return tokens & set(_KINDS), "None" in tokens or "Optional" in tokens


def _type_error(value, kinds: set[str], allow_none: bool) -> str | None:
    if value is None:
        return None if allow_none else "None"
    for kind in kinds:
        if isinstance(value, _KINDS[kind]) and (kind == "bool" or not isinstance(value, bool)):
            return None
    return f"{type(value).__name__} {value!r}"


def _passed_by_caller(name: str) -> set[str]:
    """The arguments :func:`run_sampler` passes to sampler ``name`` itself (so they are not options): a
    baseline (a point estimate) gets only ``progress``, so its own ``steps`` (CSGM's iterations) is an option."""
    from bayesinv.samplers import SAMPLERS

    if name in SAMPLERS:
        return {"problem", "y", "num_samples", "generator", "progress", "steps"}
    if name == "exact":
        return {"problem", "y", "num_samples", "generator", "progress"}
    return {"problem", "y", "progress"}


def _check_options(name: str, function: Callable, options: dict) -> None:
    """Refuse options the sampler does not take (listing the ones it does) and values whose type differs from
    the one its signature declares (``eta = true`` for a float, ``max_iter = "10"`` for an int)."""
    params = inspect.signature(function).parameters
    fixed = _passed_by_caller(name)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            allowed = ", ".join(k for k, p in params.items()
                                if k not in fixed and p.kind is inspect.Parameter.KEYWORD_ONLY)
            raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: {allowed}")
    for key, value in options.items():
        if key in fixed:
            raise ValueError(f"{name}: option {key!r} is set by the study itself ({', '.join(sorted(fixed))}), "
                             "not in options")
        declared = _declared_kinds(params[key]) if key in params else None
        if declared is None:
            continue
        got = _type_error(value, *declared)
        if got is not None:
            want = " or ".join(sorted(declared[0]) + (["None"] if declared[1] else []))
            raise ValueError(f"{name}: option {key!r} must be {want}, got {got}")


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None if unknown)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(num_samples: int, image_size: int, what: str, channels: int = 1) -> None:
    """Raise ``ValueError`` (naming ``what``, e.g. ``"--num-samples"``) with an estimate when ``num_samples``
    images of ``channels x image_size x image_size`` float64 pixels, times :data:`WORKING_COPIES`, exceed the
    machine's physical memory: a clear refusal instead of the allocator's message after minutes of work."""
    need = num_samples * channels * image_size * image_size * 8 * WORKING_COPIES
    total = physical_memory()
    if total is not None and need > total:
        raise ValueError(f"{what} {num_samples} needs at least {need / 2**30:.1f} GiB ({num_samples} x "
                         f"{channels}x{image_size}x{image_size} pixels x 8 bytes x {WORKING_COPIES} working copies), "
                         f"more than this machine's {total / 2**30:.1f} GiB; use fewer samples")


def run_sampler(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                generator: torch.Generator, options: Mapping[str, Any], progress: bool = False) -> Posterior:
    """Call a sampler, ``"exact"`` or a baseline by registry name with the uniform options.

    Diffusion samplers get ``num_samples``, ``generator``, ``progress`` and ``steps`` (when given); ``"exact"``
    gets ``num_samples`` and ``generator``; baselines (point estimates) get ``progress``. ``options`` are
    passed on as keyword arguments.
    """
    from bayesinv.samplers import SAMPLERS

    function = sampler_function(name, options)
    if name == "exact":
        return function(problem, y, num_samples=num_samples, generator=generator, **options)
    if name in SAMPLERS:
        kwargs = dict(num_samples=num_samples, generator=generator, progress=progress, **options)
        if steps is not None:
            kwargs["steps"] = steps
        return function(problem, y, **kwargs)
    return function(problem, y, progress=progress, **options)


def case_batching(name: str) -> Callable[..., list[Posterior]]:
    """The several-cases function of sampler ``name`` (:data:`~bayesinv.samplers.CASE_SAMPLERS`); a
    ``ValueError`` naming the sampler and the ones that batch cases when it runs one case per call."""
    from bayesinv.samplers import CASE_SAMPLERS

    if name not in CASE_SAMPLERS:
        raise ValueError(f"sampler {name!r} runs one case per call (its chains are not independent given y, or it "
                         f"is not written for it); the samplers that batch cases are {sorted(CASE_SAMPLERS)}")
    return CASE_SAMPLERS[name]


def run_sampler_cases(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                      generator: torch.Generator, options: Mapping[str, Any],
                      progress: bool = False) -> list[Posterior]:
    """:func:`run_sampler` for ``G`` measurements ``y: (G, *out_shape)`` in one call: one Posterior per case.

    Only the samplers of :data:`~bayesinv.samplers.CASE_SAMPLERS` do this (:func:`case_batching` refuses the
    others by name); ``options`` are checked against the sampler's signature as :func:`run_sampler` does.
    """
    function = case_batching(name)
    sampler_function(name, options)
    kwargs = dict(num_samples=num_samples, generator=generator, progress=progress, **options)
    if steps is not None:
        kwargs["steps"] = steps
    return function(problem, y, **kwargs)
