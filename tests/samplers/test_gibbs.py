"""Gibbs sweeps over images and scalar latents, checked against exact conditionals and exact marginals."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Blur, MatrixOperator
from bayesinv.priors import GaussianPrior, exact_posterior
from bayesinv.samplers.gibbs import latent_conditional_step, latent_grid, sample_gibbs

F64 = torch.float64


def _linear_problem(sigma_prior):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(3, 3, generator=g, dtype=F64)
    prior = GaussianPrior(torch.randn(3, generator=g, dtype=F64), a @ a.T / 3 + 0.5 * torch.eye(3, dtype=F64))
    op = MatrixOperator(torch.randn(4, 3, generator=g, dtype=F64))
    problem = InverseProblem(op, Gaussian(sigma_prior), prior)
    y = InverseProblem(op, Gaussian(0.6)).simulate(prior.sample_n(1, generator=g), generator=g)
    return problem, y


def _exact_x_step(problem, y, latents, generator):
    """x ~ p(x | sigma_b, y) per chain, from the closed-form Gaussian posterior."""
    out = [exact_posterior(InverseProblem(problem.operator, Gaussian(float(s)), problem.prior), y).sample(1, generator=generator)
           for s in latents["sigma"]]
    return torch.cat(out)


def test_exact_gibbs_recovers_the_marginal_posterior_of_the_noise_level():
    problem, y = _linear_problem(dist.Uniform(0.2, 1.5))
    grid = latent_grid(dist.Uniform(0.2, 1.5), 40)
    post = sample_gibbs(problem, y, num_samples=300, sweeps=8, burn_in=7, x_sampler=_exact_x_step,
                        latent_grids={"sigma": grid}, generator=torch.Generator().manual_seed(0), progress=False)
    draws = np.asarray(post.extras["latents"]["sigma"])[:, -1]
    # exact marginal on the grid: p(sigma | y) ∝ p(sigma) N(y; A m, A C A^T + sigma^2 I) (uniform prior on the grid)
    a, m, c = problem.operator.matrix.numpy(), problem.prior.mean.numpy(), problem.prior.covariance_matrix.numpy()
    logp = np.array([stats.multivariate_normal(a @ m, a @ c @ a.T + s**2 * np.eye(4)).logpdf(y[0].numpy())
                     for s in grid.numpy()])
    p = np.exp(logp - logp.max())
    p /= p.sum()
    mean = float((p * grid.numpy()).sum())
    sd = math.sqrt(float((p * grid.numpy() ** 2).sum()) - mean**2)
    assert abs(draws.mean() - mean) < 4 * sd / math.sqrt(len(draws))
    # chi-squared goodness of fit on 5 bins of equal exact mass
    cdf = np.cumsum(p)
    edges = np.searchsorted(cdf, [0.2, 0.4, 0.6, 0.8])
    idx = np.searchsorted(grid.numpy(), draws)
    observed = np.bincount(np.searchsorted(edges, idx, side="right"), minlength=5)
    expected = np.array([p[: edges[0] + 1].sum()] + [p[edges[i] + 1: edges[i + 1] + 1].sum() for i in range(3)]
                        + [p[edges[3] + 1:].sum()]) * len(draws)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert post.samples.shape == (300, 1, 3)


def test_latent_step_draws_the_exact_grid_conditional_of_a_blur_width():
    shape = (1, 8, 8)
    problem = InverseProblem(lambda width: Blur.gaussian(shape, width, size=7), Gaussian(0.05),
                             nuisance={"width": dist.Uniform(0.5, 2.5)})
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, *shape, generator=g, dtype=F64)
    y = problem.simulate(x, generator=g, width=torch.tensor([1.2], dtype=F64))
    grid = torch.linspace(0.6, 2.0, 8, dtype=F64)
    n = 4000
    draws = latent_conditional_step(problem, y, x.expand(n, *shape), {"width": torch.ones(n, dtype=F64)}, "width", grid,
                                    torch.Generator().manual_seed(2))
    # brute force: Gaussian log-density of y under each width, evaluated with numpy
    logp = np.array([-0.5 * ((y - Blur.gaussian(shape, torch.tensor(float(w), dtype=F64), size=7)(x)).numpy() ** 2).sum()
                     / 0.05**2 for w in grid])
    p = np.exp(logp - logp.max())
    p /= p.sum()
    counts = np.array([(draws == w).sum().item() for w in grid])
    assert counts.sum() == n
    keep = p * n > 5
    assert stats.chisquare(counts[keep], p[keep] * n * counts[keep].sum() / (p[keep] * n).sum()).pvalue > 1e-3


def test_gibbs_errors_name_the_problem():
    problem, y = _linear_problem(dist.Uniform(0.2, 1.5))
    with pytest.raises(ValueError, match="burn_in < sweeps"):
        sample_gibbs(problem, y, num_samples=2, sweeps=2, burn_in=2, x_sampler=_exact_x_step,
                     generator=torch.Generator(), progress=False)
    with pytest.raises(ValueError, match=r"latent_grids names \['width'\]"):
        sample_gibbs(problem, y, num_samples=2, latent_grids={"width": torch.ones(3)}, x_sampler=_exact_x_step,
                     generator=torch.Generator(), progress=False)
    with pytest.raises(ValueError, match="unknown x_sampler 'dpss'"):
        sample_gibbs(problem, y, num_samples=2, x_sampler="dpss", generator=torch.Generator(), progress=False)
    fixed = InverseProblem(problem.operator, Gaussian(0.5), problem.prior)
    with pytest.raises(ValueError, match="needs a problem with latents"):
        sample_gibbs(fixed, y, num_samples=2, generator=torch.Generator(), progress=False)

