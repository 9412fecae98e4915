"""GaussianPrior and StationaryGaussianPrior against closed forms (scipy densities, dense solves, autograd)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from bayesinv.errors import ShapeError
from bayesinv.priors import GaussianPrior, StationaryGaussianPrior, ve_geometric, vp_cosine, vp_linear

SCHEDULES = {"vp_linear": vp_linear(), "vp_cosine": vp_cosine(), "ve": ve_geometric(sigma_max=20.0)}


def random_spd(d: int, generator: torch.Generator, jitter: float = 0.1) -> torch.Tensor:
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T / d + jitter * torch.eye(d, dtype=torch.float64)


@pytest.fixture
def prior_and_x(generator):
    d = 5
    mean = torch.randn(d, generator=generator, dtype=torch.float64)
    cov = random_spd(d, generator)
    x = 2 * torch.randn(4, d, generator=generator, dtype=torch.float64)
    return mean, cov, x


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_score_is_autograd_of_noisy_log_density(prior_and_x, name):
    mean, cov, x = prior_and_x
    prior = GaussianPrior(mean, cov, schedule=SCHEDULES[name])
    t = torch.tensor([0, 10, 400, 999])
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.noisy_log_prob(xr, t).sum(), xr)
    torch.testing.assert_close(prior.score(x, t), grad, rtol=1e-8, atol=1e-8)
    # the eps parametrisation is consistent with the score: eps = -sigma * score
    _, sigma = prior.schedule.coefficients(t, x)
    torch.testing.assert_close(prior.eps(x, t), -sigma * grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_noisy_density_and_denoiser_match_dense_formulas(prior_and_x, name):
    mean, cov, x = prior_and_x
    prior = GaussianPrior(mean, cov, schedule=SCHEDULES[name])
    for t in (0, 250, 999):
        alpha, sigma = float(prior.schedule.alpha[t]), float(prior.schedule.sigma[t])
        marg_cov = alpha**2 * cov.numpy() + sigma**2 * np.eye(5)
        expected = stats.multivariate_normal(alpha * mean.numpy(), marg_cov).logpdf(x.numpy())
        np.testing.assert_allclose(prior.noisy_log_prob(x, t).numpy(), expected, rtol=1e-10)
        resid = x.numpy() - alpha * mean.numpy()
        denoised = mean.numpy() + alpha * (cov.numpy() @ np.linalg.solve(marg_cov, resid.T)).T
        np.testing.assert_allclose(prior.denoise(x, t).numpy(), denoised, rtol=1e-9, atol=1e-10)


def test_log_prob_matches_scipy_and_batch_shapes(prior_and_x):
    mean, cov, x = prior_and_x
    prior = GaussianPrior(mean, cov)
    expected = stats.multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(prior.log_prob(x).numpy(), expected, rtol=1e-10)
    assert prior.log_prob(x.reshape(2, 2, 5)).shape == (2, 2)
    assert prior.log_prob(x[0]).shape == ()


def test_image_event_shape_and_dtype_preserved(generator):
    prior = GaussianPrior(0.5, 2.0, event_shape=(1, 2, 3))
    x = torch.randn(3, 1, 2, 3, generator=generator)
    out = prior.denoise(x, 100)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert prior.mean.shape == (1, 2, 3) and float(prior.variance[0, 0, 0]) == 2.0
    assert prior.sample(torch.Size([4])).shape == (4, 1, 2, 3)


def test_samples_have_the_prior_moments(prior_and_x):
    mean, cov, _ = prior_and_x
    prior = GaussianPrior(mean, cov)
    n = 40000
    samples = prior.sample_n(n, generator=torch.Generator().manual_seed(7))
    # standard errors: sqrt(var/n) for the mean, sqrt((S_ii S_jj + S_ij^2)/n) for the covariance
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((samples.mean(0) - mean).abs() < 5 * se_mean).all())
    emp = torch.cov(samples.T)
    se_cov = ((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n).sqrt()
    assert bool(((emp - cov).abs() < 5 * se_cov).all())
    again = prior.sample_n(n, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, samples)  # reproducible from the generator


def test_singular_covariance_denoises_but_has_no_density():
    prior = GaussianPrior(torch.zeros(2), torch.diag(torch.tensor([1.0, 0.0])))
    x = torch.ones(1, 2, dtype=torch.float64)
    out = prior.denoise(x, 500)
    assert float(out[0, 1]) == 0.0  # a zero-variance coordinate is known exactly
    with pytest.raises(ValueError, match="positive-definite"):
        prior.log_prob(x)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ShapeError, match=r"cov must have shape \(3, 3\)"):
        GaussianPrior(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianPrior(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        GaussianPrior(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    prior = GaussianPrior(torch.zeros(3), 1.0)
    with pytest.raises(ShapeError, match=r"x_t must have shape \(B, 3\)"):
        prior.denoise(torch.zeros(2, 4), 0)
    with pytest.raises(ShapeError, match=r"value must have shape"):
        prior.log_prob(torch.zeros(2, 4))


# -- stationary (circulant) prior ------------------------------------------------------------------
def test_squared_exponential_covariance_is_the_kernel():
    l, var, nugget = 1.0, 2.0, 1e-3
    prior = StationaryGaussianPrior.squared_exponential((1, 12, 12), length_scale=l, variance=var, nugget=nugget)
    ii, jj = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    pos = np.stack([ii.ravel(), jj.ravel()], 1)
    delta = np.abs(pos[:, None, :] - pos[None, :, :])
    delta = np.minimum(delta, 12 - delta)  # wrap-around distance
    expected = var * np.exp(-(delta**2).sum(-1) / (2 * l**2)) + nugget * np.eye(144)
    np.testing.assert_allclose(prior.covariance_matrix.numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(prior.variance.numpy(), var + nugget, rtol=1e-12)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_stationary_prior_equals_dense_gaussian(generator, name):
    prior = StationaryGaussianPrior.squared_exponential((2, 4, 6), length_scale=1.3, mean=0.3, nugget=1e-2,
                                                        schedule=SCHEDULES[name])
    dense = GaussianPrior(prior.mean_vector, prior.covariance_matrix, event_shape=(2, 4, 6), schedule=SCHEDULES[name])
    x = torch.randn(3, 2, 4, 6, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 300, 999])
    torch.testing.assert_close(prior.denoise(x, t), dense.denoise(x, t), rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(prior.noisy_log_prob(x, t), dense.noisy_log_prob(x, t), rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(prior.log_prob(x), dense.log_prob(x), rtol=1e-9, atol=1e-8)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.noisy_log_prob(xr, t).sum(), xr)
    torch.testing.assert_close(prior.score(x, t), grad, rtol=1e-8, atol=1e-8)


def test_stationary_samples_have_the_covariance():
    prior = StationaryGaussianPrior.squared_exponential((1, 4, 4), length_scale=1.0, nugget=0.05)
    n = 40000
    samples = prior.sample_n(n, generator=torch.Generator().manual_seed(3)).reshape(n, -1)
    cov = prior.covariance_matrix
    se = ((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n).sqrt()
    assert bool(((torch.cov(samples.T) - cov).abs() < 5 * se).all())
    assert bool((samples.mean(0).abs() < 5 * (torch.diagonal(cov) / n).sqrt()).all())


def test_stationary_rejects_asymmetric_or_negative_spectrum():
    p = torch.ones(1, 4, 4)
    p[0, 0, 1] = 2.0  # p[k] != p[-k]
    with pytest.raises(ValueError, match="symmetric"):
        StationaryGaussianPrior(p)
    with pytest.raises(ValueError, match="non-negative"):
        StationaryGaussianPrior(-torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="strictly positive"):
        StationaryGaussianPrior(torch.zeros(1, 4, 4)).log_prob(torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("kind", ["dense", "stationary", "mixture"])
def test_priors_are_pyro_sites_of_the_inverse_problem_model(kind):
    """Inside the model's chains plate the prior is expanded; the traced joint density is prior + likelihood."""
    import pyro

    from bayesinv import Gaussian, InverseProblem
    from bayesinv.operators import Identity
    from bayesinv.priors import GaussianMixturePrior

    prior = {"dense": GaussianPrior(torch.zeros(1, 2, 2), 1.5),
             "stationary": StationaryGaussianPrior.squared_exponential((1, 2, 2), length_scale=1.0),
             "mixture": GaussianMixturePrior(torch.tensor([0.3, 0.7]), torch.arange(8.0).reshape(2, 1, 2, 2),
                                             0.5)}[kind]
    problem = InverseProblem(Identity((1, 2, 2)), Gaussian(0.5), prior)
    y = torch.zeros(1, 2, 2, dtype=torch.float64)
    trace = pyro.poutine.trace(problem.model).get_trace(y, num_samples=3)
    x = trace.nodes["x"]["value"]
    assert x.shape == (3, 1, 2, 2)
    expected = prior.log_prob(x).sum() + problem.log_likelihood(x, y).sum()
    assert float(trace.log_prob_sum()) == pytest.approx(float(expected), rel=1e-12)
