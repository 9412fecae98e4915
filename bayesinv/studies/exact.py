"""Exact posterior draws as a study "sampler": the gold standard (and a deliberately broken control).

For a linear-Gaussian problem with a Gaussian or Gaussian-mixture prior (for example the
``phantom-gaussian`` prior of :func:`~bayesinv.studies.runner.resolve_prior`), the posterior is known in
closed form (:func:`bayesinv.priors.exact.exact_posterior`). A study with ``sampler = "exact"`` checks
the whole pipeline against it: nominal coverage, uniform SBC ranks, diagonal TARP.

``shrink < 1`` returns ``mean + shrink (x - mean)`` for exact draws ``x``: an *over-confident* sampler
with the right centre and too little spread, which every calibration diagnostic must flag.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors.gaussian import GaussianPrior
>>> problem = InverseProblem(Identity((2,)), Gaussian(1.0), GaussianPrior(torch.zeros(2), 1.0))
>>> post = sample_exact(problem, torch.zeros(1, 2), num_samples=4, generator=torch.Generator().manual_seed(0))
>>> tuple(post.samples.shape), post.sampler
((4, 1, 2), 'exact')
"""

from __future__ import annotations

import time

import torch

from bayesinv.posterior import Posterior
from bayesinv.priors.exact import exact_posterior
from bayesinv.problem import InverseProblem

__all__ = ["sample_exact"]


def sample_exact(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, generator: torch.Generator,
                 shrink: float = 1.0, progress: bool = False) -> Posterior:
    """``num_samples`` exact posterior draws, optionally shrunk about the posterior mean by ``shrink``.

    Parameters
    ----------
    problem : linear operator, Gaussian noise with known sigma, Gaussian or mixture prior.
    y : one measurement ``(1, *out_shape)``.
    num_samples : draws (returned as ``num_samples`` chains of one draw).
    generator : the only source of randomness.
    shrink : ``1`` gives exact draws; ``0 < shrink < 1`` an over-confident control.
    progress : ignored (accepted for the uniform sampler signature).
    """
    if not shrink > 0:
        raise ValueError(f"shrink must be positive, got {shrink}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    start = time.perf_counter()
    post = exact_posterior(problem, y)
    draws = post.sample(num_samples, generator=generator)
    mean = post.mean.reshape(post.event_shape)
    draws = mean + shrink * (draws - mean)
    return Posterior(draws[:, None], sampler="exact", settings={"shrink": shrink}, nfe=0,
                     wall_time=time.perf_counter() - start, problem={"name": getattr(problem, "name", "")})
