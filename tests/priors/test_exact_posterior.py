"""exact_posterior against dense numpy solves, Bayes' rule and brute-force numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from bayesinv import Gaussian, InverseProblem, Poisson
from bayesinv.errors import ShapeError
from bayesinv.operators import Identity
from bayesinv.operators.base import LinearOperator
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import (GaussianMixturePrior, GaussianPrior, StationaryGaussianPrior, exact_posterior,
                             mixture_testbed, random_measurement)


def spd(d, generator, jitter=0.2):
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T / d + jitter * torch.eye(d, dtype=torch.float64)


def gaussian_problem(generator, d=6, m=3, sigma=0.3):
    prior = GaussianPrior(torch.randn(d, generator=generator, dtype=torch.float64), spd(d, generator))
    op = MatrixOperator(torch.randn(m, d, generator=generator, dtype=torch.float64))
    problem = InverseProblem(op, Gaussian(sigma), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    return problem, y


def test_gaussian_posterior_equals_dense_precision_solve(generator):
    problem, y = gaussian_problem(generator)
    post = exact_posterior(problem, y)
    a = problem.operator.matrix.numpy()
    mu, cov = problem.prior.mean_vector.numpy(), problem.prior.covariance_matrix.numpy()
    s2 = problem.noise.sigma**2
    precision = np.linalg.inv(cov) + a.T @ a / s2
    cov_post = np.linalg.inv(precision)
    mean_post = cov_post @ (np.linalg.solve(cov, mu) + a.T @ y.numpy()[0] / s2)
    assert post.is_gaussian
    np.testing.assert_allclose(post.mean.numpy(), mean_post, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(post.cov.numpy(), cov_post, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(post.variance.numpy(), np.diag(cov_post), rtol=1e-8)
    evidence = stats.multivariate_normal(a @ mu, a @ cov @ a.T + s2 * np.eye(3)).logpdf(y.numpy()[0])
    assert post.log_evidence == pytest.approx(evidence, rel=1e-10)


def test_log_prob_is_bayes_rule(generator):
    """log p(x|y) = log p(x) + log p(y|x) - log p(y) at arbitrary points (mixture prior, 3 components)."""
    d = 4
    covs = torch.stack([spd(d, generator) for _ in range(3)])
    prior = GaussianMixturePrior(torch.tensor([0.2, 0.3, 0.5]), 2 * torch.randn(3, d, generator=generator), covs)
    problem = InverseProblem(MatrixOperator(torch.randn(2, d, generator=generator, dtype=torch.float64)),
                             Gaussian(0.5), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    post = exact_posterior(problem, y)
    x = 2 * torch.randn(5, d, generator=generator, dtype=torch.float64)
    expected = prior.log_prob(x) + problem.log_likelihood(x, y) - post.log_evidence
    torch.testing.assert_close(post.log_prob(x), expected, rtol=1e-9, atol=1e-9)


def mixture_1d_problem():
    prior = GaussianMixturePrior(torch.tensor([0.3, 0.5, 0.2]), torch.tensor([[-3.0], [0.0], [4.0]]),
                                 torch.tensor([0.5, 1.0, 0.8]))
    problem = InverseProblem(MatrixOperator(torch.tensor([[0.7]], dtype=torch.float64)), Gaussian(0.6), prior)
    return problem, torch.tensor([[1.9]], dtype=torch.float64)


def test_mixture_posterior_matches_quadrature_in_1d():
    problem, y = mixture_1d_problem()
    post = exact_posterior(problem, y)
    prior = problem.prior
    grid = np.linspace(-12, 12, 48001)
    lik = stats.norm(0.7 * grid, 0.6).pdf(1.9)
    stds = np.sqrt(prior.component_variances.numpy())
    comps = prior.weights.numpy()[:, None] * stats.norm(prior.means.numpy(), stds).pdf(grid)
    joint = comps * lik
    mass = integrate.trapezoid(joint, grid, axis=1)
    np.testing.assert_allclose(post.weights.numpy(), mass / mass.sum(), rtol=1e-8)
    assert post.log_evidence == pytest.approx(np.log(mass.sum()), rel=1e-9)
    dens = joint.sum(0) / mass.sum()
    mean = integrate.trapezoid(grid * dens, grid)
    var = integrate.trapezoid((grid - mean) ** 2 * dens, grid)
    assert float(post.mean) == pytest.approx(mean, rel=1e-8)
    assert float(post.variance) == pytest.approx(var, rel=1e-8)
    np.testing.assert_allclose(post.log_prob(torch.from_numpy(grid[::1000, None])).exp().numpy(), dens[::1000],
                               rtol=1e-8, atol=1e-14)
    # marginal quantiles invert the numerically integrated CDF
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0)
    for q in (0.01, 0.3, 0.5, 0.9, 0.999):
        assert float(post.quantile(q)) == pytest.approx(np.interp(q, cdf, grid), abs=1e-5)
    qs = post.quantile([0.05, 0.5, 0.95])
    torch.testing.assert_close(post.cdf(qs), torch.tensor([[0.05], [0.5], [0.95]], dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_mixture_weights_match_2d_grid_integration(generator):
    covs = torch.stack([spd(2, generator, 0.3) for _ in range(4)])
    prior = GaussianMixturePrior(torch.tensor([0.1, 0.2, 0.3, 0.4]), 3 * torch.randn(4, 2, generator=generator), covs)
    a = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    problem = InverseProblem(MatrixOperator(a), Gaussian(0.4), prior)
    y = torch.tensor([[0.8]], dtype=torch.float64)
    post = exact_posterior(problem, y)
    axis = np.linspace(-14, 14, 1401)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    lik = stats.norm(pts @ a.numpy()[0], 0.4).pdf(0.8)
    mass = np.array([w * integrate.trapezoid(integrate.trapezoid(
        (stats.multivariate_normal(m, c).pdf(pts) * lik).reshape(xx.shape), axis, axis=1), axis)
        for w, m, c in zip(prior.weights.numpy(), prior.means.numpy(), covs.numpy())])
    np.testing.assert_allclose(post.weights.numpy(), mass / mass.sum(), rtol=1e-6)


def test_samples_match_moments_and_quantiles(generator):
    problem, y = mixture_1d_problem()
    post = exact_posterior(problem, y)
    n = 40000
    samples = post.sample(n, generator=torch.Generator().manual_seed(11))
    assert samples.shape == (n, 1)
    assert abs(float(samples.mean() - post.mean)) < 5 * float(post.std) / n**0.5
    ks = stats.kstest(samples.numpy()[:, 0], lambda v: post.cdf(torch.from_numpy(v[:, None]))[:, 0].numpy())
    assert ks.pvalue > 1e-3
    ref = post.to_posterior(10, generator=torch.Generator().manual_seed(1))
    assert ref.samples.shape == (10, 1, 1) and ref.sampler == "exact"


def test_identity_denoising_with_image_prior_and_stationary_prior(generator):
    prior = StationaryGaussianPrior.squared_exponential((1, 4, 4), length_scale=1.0, nugget=0.05)
    problem = InverseProblem(Identity((1, 4, 4)), Gaussian(0.5), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    post = exact_posterior(problem, y)
    assert post.mean.shape == (1, 4, 4) and post.quantile([0.1, 0.9]).shape == (2, 1, 4, 4)
    # A = I: the posterior mean is the Wiener filter, i.e. the denoiser at noise level 0.5
    cov = prior.covariance_matrix.numpy()
    wiener = cov @ np.linalg.solve(cov + 0.25 * np.eye(16), y.numpy().reshape(16))
    np.testing.assert_allclose(post.mean.numpy().ravel(), wiener, rtol=1e-9, atol=1e-12)
    lo, hi = post.interval(0.9)
    np.testing.assert_allclose((hi - lo).numpy().ravel(), 2 * 1.6448536269514722 * np.sqrt(np.diag(post.cov.numpy())),
                               rtol=1e-9)


class _RealToComplexDFT(LinearOperator):
    """A real-input, complex-output operator (unitary DFT of a vector) to test the re/im row split."""

    def __init__(self, n):
        super().__init__((n,), (n,), output_complex=True)

    def _forward(self, x):
        return torch.fft.fft(x, norm="ortho")

    def _adjoint(self, y):
        return torch.fft.ifft(y, norm="ortho")


def test_complex_measurements_split_into_real_and_imaginary_rows(generator):
    d = 4
    prior = GaussianPrior(torch.zeros(d), spd(d, generator))
    op = _RealToComplexDFT(d)
    problem = InverseProblem(op, Gaussian(0.3), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    post = exact_posterior(problem, y)
    m = op.to_matrix()
    real_rows = torch.cat([m.real, m.imag])
    real_problem = InverseProblem(MatrixOperator(real_rows), Gaussian(0.3), prior)
    ref = exact_posterior(real_problem, torch.cat([y.real, y.imag], dim=1))
    torch.testing.assert_close(post.mean, ref.mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.cov, ref.cov, rtol=1e-10, atol=1e-12)
    x = torch.randn(3, d, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(post.log_prob(x), prior.log_prob(x) + problem.log_likelihood(x, y) - post.log_evidence)


def test_random_measurement_and_testbed():
    op, sigma = random_measurement(10, 4, generator=torch.Generator().manual_seed(2))
    s = torch.linalg.svdvals(op.matrix)
    assert bool((s > 0).all() and (s < 1).all()) and 0 < sigma < float(s[0])
    bed = mixture_testbed(6, 2, generator=torch.Generator().manual_seed(3))
    again = mixture_testbed(6, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(bed.y, again.y) and torch.equal(bed.posterior.weights, again.posterior.weights)
    assert bed.x.shape == (1, 6) and bed.y.shape == (1, 2)
    assert float(bed.posterior.weights.sum()) == pytest.approx(1.0)
    # the posterior concentrates where the data say: the residual of its mean is within a few noise stds
    a = bed.problem.operator.matrix
    resid = bed.y[0] - a @ bed.posterior.mean
    assert float(resid.norm()) < float(bed.y[0].norm()) + 5 * bed.problem.noise.sigma


def test_bad_problems_raise_clear_errors(generator):
    problem, y = gaussian_problem(generator)
    with pytest.raises(TypeError, match="Gaussian noise with a known sigma"):
        exact_posterior(InverseProblem(problem.operator, Poisson(), problem.prior), y)
    with pytest.raises(ShapeError, match=r"y must have shape \(3,\)"):
        exact_posterior(problem, torch.zeros(1, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="GaussianPrior"):
        exact_posterior(problem, y, prior=object())
    post = exact_posterior(problem, y)
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\)"):
        post.quantile(1.5)
