"""Problems, priors and samplers from names: the one front door of ``bayesinv sample`` and the study runner.

* :func:`resolve_prior` turns a prior name into a prior: ``"phantom-gaussian"`` (the exact Gaussian fit to
  4000 training phantoms, whose posteriors are known in closed form) or a committed model ``models/<name>``.
* :func:`make_problem` builds the :class:`~bayesinv.problem.InverseProblem` of a registry operator on
  ``(1, S, S)`` images with Gaussian noise of std ``noise_sigma``.
* :func:`run_sampler` calls a sampler, a baseline or ``"exact"`` (:func:`~bayesinv.priors.exact.sample_exact`)
  by registry name with the uniform options (``num_samples``, ``steps``, ``generator``, extra options),
  refusing unknown names and options before any work is done (:func:`sampler_function`).

The studies layer (:mod:`bayesinv.studies`) builds its problems and runs its samplers through these; nothing
here imports the studies layer.

>>> problem = make_problem("denoise", image_size=4, noise_sigma=0.1)
>>> problem.name, tuple(problem.operator.in_shape)
('denoise-4', (1, 4, 4))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from bayesinv.noise import Gaussian
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem

__all__ = ["resolve_prior", "make_problem", "sampler_registry", "sampler_function", "run_sampler"]


def resolve_prior(name: str, image_size: int = 32):
    """A prior by name: ``phantom-gaussian`` (exact Gaussian fit to training phantoms) or ``models/<name>``."""
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
    """The sampler ``name``, after checking that it takes every key of ``options``.

    Raises ``ValueError`` naming the valid samplers (unknown name) or the sampler's options (unknown option).
    """
    registry = sampler_registry()
    if name not in registry:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(registry)}")
    function = registry[name]
    params = inspect.signature(function).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        fixed = {"problem", "y", "num_samples", "generator", "progress", "steps"}
        unknown = sorted(set(options) - set(params))
        if unknown:
            allowed = ", ".join(k for k, p in params.items()
                                if k not in fixed and p.kind is inspect.Parameter.KEYWORD_ONLY)
            raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: {allowed}")
    return function


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
