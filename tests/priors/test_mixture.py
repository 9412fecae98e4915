"""GaussianMixturePrior against brute force: scipy densities, numerical integration, autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from bayesinv.errors import ShapeError
from bayesinv.priors import GaussianMixturePrior, grid_mixture, ve_geometric, vp_linear

SCHEDULES = {"vp": vp_linear(), "ve": ve_geometric(sigma_max=20.0)}


def random_mixture(generator, k=3, d=4, dense=True, schedule=None):
    weights = torch.rand(k, generator=generator, dtype=torch.float64) + 0.1
    means = 3 * torch.randn(k, d, generator=generator, dtype=torch.float64)
    if dense:
        a = torch.randn(k, d, d, generator=generator, dtype=torch.float64)
        covs = a @ a.transpose(-1, -2) / d + 0.2 * torch.eye(d, dtype=torch.float64)
    else:
        covs = torch.rand(k, d, generator=generator, dtype=torch.float64) + 0.2
    return GaussianMixturePrior(weights, means, covs, schedule=schedule)


def brute_noisy_log_prob(prior, x, t):
    alpha, sigma = float(prior.schedule.alpha[t]), float(prior.schedule.sigma[t])
    covs = prior.covariance_matrices.numpy()
    dens = [w * stats.multivariate_normal(alpha * m, alpha**2 * c + sigma**2 * np.eye(len(m))).pdf(x)
            for w, m, c in zip(prior.weights.numpy(), prior.means.numpy(), covs)]
    return np.log(np.sum(dens, axis=0))


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_score_is_autograd_of_noisy_log_density(generator, dense, name):
    prior = random_mixture(generator, dense=dense, schedule=SCHEDULES[name])
    x = 3 * torch.randn(5, 4, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 5, 200, 600, 999])
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.noisy_log_prob(xr, t).sum(), xr)
    torch.testing.assert_close(prior.score(x, t), grad, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("dense", [True, False])
def test_noisy_and_clean_densities_match_scipy(generator, dense):
    prior = random_mixture(generator, dense=dense)
    x = 3 * torch.randn(6, 4, generator=generator, dtype=torch.float64)
    for t in (0, 300, 999):
        np.testing.assert_allclose(prior.noisy_log_prob(x, t).numpy(), brute_noisy_log_prob(prior, x.numpy(), t),
                                   rtol=1e-9)
    dens = [w * stats.multivariate_normal(m, c).pdf(x.numpy())
            for w, m, c in zip(prior.weights.numpy(), prior.means.numpy(), prior.covariance_matrices.numpy())]
    np.testing.assert_allclose(prior.log_prob(x).numpy(), np.log(np.sum(dens, 0)), rtol=1e-9)
    assert prior.log_prob(x.reshape(2, 3, 4)).shape == (2, 3)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_denoiser_equals_numerical_posterior_mean_in_1d(name):
    """E[x0 | x_t] = int x0 p(x0) N(x_t; a x0, s^2) dx0 / int p(x0) N(x_t; a x0, s^2) dx0 (quadrature)."""
    schedule = SCHEDULES[name]
    prior = GaussianMixturePrior(torch.tensor([0.2, 0.5, 0.3]), torch.tensor([[-4.0], [0.5], [3.0]]),
                                 torch.tensor([0.3, 1.0, 0.5]), schedule=schedule)
    w, m, v = prior.weights.numpy(), prior.means.numpy()[:, 0], prior.component_variances.numpy()[:, 0]
    grid = np.linspace(-15, 15, 60001)  # trapezoid on a fine grid: spectrally accurate for these integrands
    prior_pdf = (w[:, None] * stats.norm(m[:, None], np.sqrt(v)[:, None]).pdf(grid)).sum(0)
    for t in (50, 400, 900):
        a, s = float(schedule.alpha[t]), float(schedule.sigma[t])
        for xt in (-3.0, 0.2, 2.5):
            joint = prior_pdf * stats.norm(a * grid, s).pdf(xt)
            z = integrate.trapezoid(joint, grid)
            num = integrate.trapezoid(grid * joint, grid)
            x_t = torch.tensor([[xt]], dtype=torch.float64)
            assert float(prior.denoise(x_t, t)) == pytest.approx(num / z, rel=1e-7, abs=1e-9)
            # p_t(x_t) = int p(x0) N(x_t; a x0, s^2) dx0
            assert float(prior.noisy_log_prob(x_t, t)) == pytest.approx(np.log(z), rel=1e-7)


def test_responsibilities_are_a_distribution(generator):
    prior = random_mixture(generator)
    r = prior.responsibilities(torch.randn(7, 4, generator=generator, dtype=torch.float64), 300)
    assert r.shape == (7, 3)
    torch.testing.assert_close(r.sum(1), torch.ones(7, dtype=torch.float64))


def test_samples_have_mixture_moments_and_component_frequencies(generator):
    prior = random_mixture(generator, k=3, d=2)
    n = 30000
    samples = prior.sample_n(n, generator=torch.Generator().manual_seed(5))
    se = (prior.variance / n).sqrt()
    assert bool(((samples.mean(0) - prior.mean).abs() < 5 * se).all())
    assert bool(((samples.var(0) / prior.variance - 1).abs() < 0.05).all())
    # the log-density integrates against samples: E[log p(X)] is the (negative) entropy; compare with
    # an independent second sample set, the difference is within Monte Carlo error
    lp1 = prior.log_prob(samples)
    lp2 = prior.log_prob(prior.sample_n(n, generator=torch.Generator().manual_seed(6)))
    assert abs(float(lp1.mean() - lp2.mean())) < 5 * float((lp1.var() / n * 2).sqrt())


def test_grid_mixture_is_the_mcgdiff_testbed():
    prior = grid_mixture(5, generator=torch.Generator().manual_seed(0))
    assert prior.num_components == 25 and tuple(prior.event_shape) == (5,)
    values = set(prior.means.unique().tolist())
    assert values == {-8.0, -4.0, 0.0, 4.0, 8.0}
    # each mean repeats its (i, j) pair along d, truncated for odd d
    torch.testing.assert_close(prior.means[:, 2:4], prior.means[:, :2])
    torch.testing.assert_close(prior.means[:, 4], prior.means[:, 0])
    assert len({tuple(m[:2].tolist()) for m in prior.means}) == 25
    torch.testing.assert_close(prior.covariance_matrices, torch.eye(5, dtype=torch.float64).expand(25, 5, 5))
    assert float(prior.weights.sum()) == pytest.approx(1.0)
    other = grid_mixture(5, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other.weights, prior.weights)
    assert set(grid_mixture(2, spacing=8.0).means.unique().tolist()) == {-16.0, -8.0, 0.0, 8.0, 16.0}


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ShapeError, match=r"means must have shape \(2, d\)"):
        GaussianMixturePrior(torch.ones(2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixturePrior(torch.tensor([1.0, -1.0]), torch.zeros(2, 2))
    with pytest.raises(ShapeError, match=r"covs must be a scalar"):
        GaussianMixturePrior(torch.ones(2), torch.zeros(2, 3), torch.ones(2, 3, 2))
    with pytest.raises(ValueError, match="singular"):
        GaussianMixturePrior(torch.ones(1), torch.zeros(1, 2), 0.0).log_prob(torch.zeros(2))


@pytest.mark.parametrize("covs", ["scalar", "per_component"])
def test_isotropic_fast_path_equals_the_rotated_path(generator, covs):
    """Isotropic components skip the (B, K, d) residuals; the same mixture given as dense s_k I matrices takes the
    general eigenbasis path: denoiser, score, densities and responsibilities agree, per-sample t included."""
    k, d = 6, 40
    weights = torch.rand(k, generator=generator, dtype=torch.float64) + 0.1
    means = 4 * torch.randn(k, d, generator=generator, dtype=torch.float64)
    s = torch.full((k,), 0.7, dtype=torch.float64) if covs == "scalar" else \
        torch.rand(k, generator=generator, dtype=torch.float64) + 0.3
    fast = GaussianMixturePrior(weights, means, 0.7 if covs == "scalar" else s)
    dense = GaussianMixturePrior(weights, means, s[:, None, None] * torch.eye(d, dtype=torch.float64))
    assert fast._iso_var is not None and dense._iso_var is None
    x = means[torch.tensor([0, 3, 5, 1])] + 0.5 * torch.randn(4, d, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 10, 300, 999])
    for method in ("denoise", "score", "noisy_log_prob", "responsibilities"):
        torch.testing.assert_close(getattr(fast, method)(x, t), getattr(dense, method)(x, t), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast.log_prob(x), dense.log_prob(x), rtol=1e-10, atol=1e-10)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fast.denoise(xg, 300).sum(), xg)  # the DPS path: autograd through the denoiser
    xd = x.clone().requires_grad_(True)
    (grad_dense,) = torch.autograd.grad(dense.denoise(xd, 300).sum(), xd)
    torch.testing.assert_close(grad, grad_dense, rtol=1e-9, atol=1e-10)
