"""NumPyro NUTS reference sampler against exact posteriors, quadrature and simulation-based calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Identity
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.posterior import Posterior
from bayesinv.priors import GaussianMixturePrior, GaussianPrior, exact_posterior
from bayesinv.samplers.reference import sample_nuts


def gaussian_problem(generator, d=4, m=2, sigma=0.4):
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    prior = GaussianPrior(torch.randn(d, generator=generator, dtype=torch.float64),
                          a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.float64))
    problem = InverseProblem(MatrixOperator(torch.randn(m, d, generator=generator, dtype=torch.float64)),
                             Gaussian(sigma), prior, name="gauss")
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    return problem, y


def assert_moments_within_mc_error(post, mean, var, z=5.0):
    """|sample mean - mean| < z * sd / sqrt(ESS) and |sample var - var| < z * sqrt(2) var / sqrt(ESS)."""
    ess = post.ess().reshape(-1)
    assert bool((ess > 100).all()), f"too few effective samples: {ess}"
    sd = var.reshape(-1).sqrt()
    err_mean = (post.mean().reshape(-1) - mean.reshape(-1)).abs()
    assert bool((err_mean < z * sd / ess.sqrt()).all()), (err_mean, sd / ess.sqrt())
    err_var = (post.std().reshape(-1) ** 2 - var.reshape(-1)).abs()
    assert bool((err_var < z * np.sqrt(2) * var.reshape(-1) / ess.sqrt()).all()), (err_var, var)


@pytest.mark.slow
def test_nuts_matches_exact_gaussian_posterior(generator):
    problem, y = gaussian_problem(generator)
    post = sample_nuts(problem, y, num_samples=600, num_warmup=400, num_chains=4, seed=1)
    exact = exact_posterior(problem, y)
    assert post.samples.shape == (4, 600, 4) and post.sampler == "nuts" and post.seed == 1
    assert post.settings["prior"] == "gaussian" and post.nfe > 0 and post.wall_time > 0
    assert post.extras["divergences"] == 0
    assert float(post.rhat().max()) < 1.01
    assert_moments_within_mc_error(post, exact.mean, exact.variance)


@pytest.mark.slow
def test_nuts_on_mixture_recovers_posterior_weights():
    """A 1-D trimodal posterior with overlapping modes: NUTS must put the right mass in each mode."""
    prior = GaussianMixturePrior(torch.tensor([0.3, 0.5, 0.2]), torch.tensor([[-2.0], [0.0], [2.5]]),
                                 torch.tensor([0.5, 0.6, 0.5]))
    problem = InverseProblem(MatrixOperator(torch.tensor([[0.5]], dtype=torch.float64)), Gaussian(0.8), prior)
    y = torch.tensor([[0.3]], dtype=torch.float64)
    exact = exact_posterior(problem, y)
    post = sample_nuts(problem, y, num_samples=1200, num_warmup=400, num_chains=4, seed=0)
    assert_moments_within_mc_error(post, exact.mean, exact.variance)
    ks = stats.kstest(post.flat().numpy()[::4, 0], lambda v: exact.cdf(torch.from_numpy(v[:, None]))[:, 0].numpy())
    assert ks.pvalue > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["laplace_fd", "tv"])
def test_difference_priors_match_quadrature(kind):
    """d = 2, A = I: u = (x1+x2)/sqrt2 ~ N(.., s^2) exactly, v = (x2-x1)/sqrt2 has a 1-D density."""
    lam, s, eps = 1.5, 0.5, 1e-3
    problem = InverseProblem(Identity((2,)), Gaussian(s))
    y = torch.tensor([0.2, 1.1], dtype=torch.float64)
    post = sample_nuts(problem, y, prior=kind, regularization=lam, tv_smoothing=eps, num_samples=1200,
                       num_warmup=400, num_chains=4, seed=3)
    grid = np.linspace(-6, 6, 120001)
    v0 = float(y[1] - y[0]) / np.sqrt(2)
    penalty = np.abs(np.sqrt(2) * grid) if kind == "laplace_fd" else np.sqrt(2 * grid**2 + eps**2) - eps
    dens = np.exp(-lam * penalty) * stats.norm(v0, s).pdf(grid)
    dens /= integrate.trapezoid(dens, grid)
    v_mean = integrate.trapezoid(grid * dens, grid)
    v_var = integrate.trapezoid((grid - v_mean) ** 2 * dens, grid)
    u0 = float(y.sum()) / np.sqrt(2)
    rot = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64) / np.sqrt(2)  # x -> (u, v)
    uv = Posterior(post.samples @ rot.T)
    assert_moments_within_mc_error(uv, torch.tensor([u0, v_mean]), torch.tensor([s**2, v_var]))


@pytest.mark.slow
def test_simulation_based_calibration_is_uniform():
    """SBC (Talts et al. 2018): 100 replications of a 2-D Gaussian problem, ranks of the truth among
    thinned NUTS draws are uniform. The replications are sampled in one call as a block-diagonal
    200-D problem (the posterior factorises, so every block is an independent replication)."""
    gen = torch.Generator().manual_seed(2024)
    reps = 100
    prior2 = GaussianPrior(torch.tensor([0.5, -0.5]), torch.tensor([[1.0, 0.6], [0.6, 1.0]]))
    a2 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    prior = GaussianPrior(prior2.mean_vector.repeat(reps), torch.block_diag(*[prior2.covariance_matrix] * reps))
    problem = InverseProblem(MatrixOperator(torch.block_diag(*[a2] * reps)), Gaussian(0.5), prior)
    truth = prior.sample_n(1, generator=gen)
    y = problem.simulate(truth, generator=gen)
    post = sample_nuts(problem, y, num_samples=480, num_warmup=300, num_chains=2, thinning=6, seed=7)
    draws = post.flat()  # (160, 200): thinned to ~independent draws
    ranks = (draws < truth).sum(0).numpy()  # in 0..160, one per replication and coordinate
    counts = np.histogram(ranks, bins=10, range=(0, draws.shape[0] + 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    # the same check must reject a biased sampler: shift the draws by half a posterior std
    shifted = ((draws + 0.5 * draws.std(0)) < truth).sum(0).numpy()
    assert stats.chisquare(np.histogram(shifted, bins=10, range=(0, draws.shape[0] + 1))[0]).pvalue < 1e-3


def test_bad_arguments_raise_clear_errors(generator):
    problem, y = gaussian_problem(generator)
    with pytest.raises(ValueError, match="prior must be 'auto' or one of"):
        sample_nuts(problem, y, prior="horseshoe")
    with pytest.raises(TypeError, match="needs a GaussianMixturePrior"):
        sample_nuts(problem, y, prior="mixture")
    with pytest.raises(ValueError, match="regularization=lambda > 0"):
        sample_nuts(problem, y, prior="tv")
    with pytest.raises(ValueError, match="prior='auto' recognises"):
        sample_nuts(InverseProblem(problem.operator, problem.noise), y)
