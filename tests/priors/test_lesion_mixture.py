"""LesionMixturePrior and its exact posterior against dense Gaussian-mixture computations at 8x8."""

import math

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import MRI, Blur, Inpaint
from bayesinv.operators.inpaint import random_mask
from bayesinv.operators.mri import cartesian_mask
from bayesinv.priors import (GaussianMixturePrior, LesionMixturePrior, StationaryGaussianPrior, exact_posterior,
                             vp_linear)
from bayesinv.priors.exact import GaussianMixturePosterior, LesionPosteriorSolver, SharedCovarianceMixturePosterior
from bayesinv.priors.lesion_mixture import fit_stationary_background, grid_locations, lesion_offsets

SIZE = 8


@pytest.fixture(scope="module")
def prior():
    return LesionMixturePrior.from_phantoms(SIZE, num_phantoms=300, num_locations=4, radius=1.2, contrast=0.3,
                                            schedule=vp_linear(200))


@pytest.fixture(scope="module")
def dense(prior):
    """The same prior as a dense GaussianMixturePrior (every component carries the full d x d covariance)."""
    j, d = prior.num_components, prior.dim
    covs = prior.covariance_matrix.expand(j, d, d).clone()
    return GaussianMixturePrior(prior.weights, prior.means, covs, schedule=prior.schedule,
                                event_shape=prior.event_shape)


def operators():
    shape = (1, SIZE, SIZE)
    g = torch.Generator().manual_seed(3)
    return {"deblur": Blur.gaussian(shape, 1.5), "inpaint": Inpaint(shape, random_mask((SIZE, SIZE), 0.5, g)),
            "mri": MRI(shape, cartesian_mask(SIZE, 4, generator=g))}


def test_fit_records_its_settings_and_is_symmetric():
    fit = fit_stationary_background(SIZE, num_phantoms=50, seed=2)
    assert fit.info["num_phantoms"] == 50 and fit.info["seed"] == 2 and fit.info["size"] == SIZE
    mirrored = torch.roll(torch.flip(fit.power_spectrum, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    assert torch.allclose(fit.power_spectrum, mirrored) and bool((fit.power_spectrum >= fit.info["nugget"]).all())


def test_lesion_layout(prior):
    assert prior.num_components == 1 + 2 * 4 and prior.num_locations == 4
    assert torch.isclose(prior.weights[0], torch.tensor(0.5, dtype=torch.float64))
    assert torch.allclose(prior.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # offsets come in +/- pairs at the same location
    assert torch.allclose(prior.offsets[:4], -prior.offsets[4:])
    assert prior.masks[0].sum() > 0 and prior.masks.shape == (8, 1, SIZE, SIZE)


@pytest.mark.parametrize("t", [0, 20, 100, 199])
def test_denoiser_and_density_equal_dense_mixture(prior, dense, t):
    g = torch.Generator().manual_seed(t)
    x0 = prior.sample_n(6, generator=g)
    alpha, sigma = prior.schedule.alpha[t], prior.schedule.sigma[t]
    x_t = alpha * x0 + sigma * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(prior.denoise(x_t, t), dense.denoise(x_t, t), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(prior.noisy_log_prob(x_t, t), dense.noisy_log_prob(x_t, t), rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(prior.responsibilities(x_t, t), dense.responsibilities(x_t, t), rtol=1e-8, atol=1e-10)
    tt = torch.full((6,), t)
    torch.testing.assert_close(prior.denoise(x_t, tt), dense.denoise(x_t, t), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape", [(1, 6, 7), (1, 5, 8)])
def test_half_spectrum_path_equals_dense_on_odd_and_non_square_images(shape):
    """The real-FFT half spectrum has a Nyquist column only for even widths: check both, off the square."""
    g = torch.Generator().manual_seed(sum(shape))
    background = StationaryGaussianPrior.squared_exponential(shape, length_scale=1.3, variance=0.2, nugget=1e-3)
    offsets = 0.3 * torch.randn(3, *shape, generator=g, dtype=torch.float64)
    prior = LesionMixturePrior(background.power_spectrum, 0.1, offsets, lesion_weight=0.4, schedule=vp_linear(50))
    d = prior.dim
    dense = GaussianMixturePrior(prior.weights, prior.means, prior.covariance_matrix.expand(4, d, d).clone(),
                                 schedule=prior.schedule, event_shape=prior.event_shape)
    x0 = prior.sample_n(5, generator=g)
    for t in (3, 30):
        x_t = prior.schedule.alpha[t] * x0 + prior.schedule.sigma[t] * torch.randn(x0.shape, generator=g,
                                                                                  dtype=torch.float64)
        torch.testing.assert_close(prior.denoise(x_t, t), dense.denoise(x_t, t), rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(prior.noisy_log_prob(x_t, t), dense.noisy_log_prob(x_t, t), rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(prior.log_prob(x0), dense.log_prob(x0), rtol=1e-10, atol=1e-8)


def test_clean_density_and_lesion_probability_equal_dense(prior, dense):
    x = prior.sample_n(5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(prior.log_prob(x), dense.log_prob(x), rtol=1e-10, atol=1e-8)
    log_joint = dense.weights.log() + torch.stack([
        torch.distributions.MultivariateNormal(m, dense.covariance_matrices[0]).log_prob(x.reshape(5, -1))
        for m in dense.means], 1)
    expected = 1 - torch.softmax(log_joint, 1)[:, 0]
    torch.testing.assert_close(prior.lesion_probability(x), expected, rtol=1e-8, atol=1e-10)
    per_location = prior.location_probabilities(x)
    torch.testing.assert_close(per_location.sum(1), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("t", [5, 60, 180])
def test_score_is_gradient_of_noisy_log_density(prior, t):
    g = torch.Generator().manual_seed(10 + t)
    x_t = prior.schedule.alpha[t] * prior.sample_n(1, generator=g) \
        + prior.schedule.sigma[t] * torch.randn(1, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
    score = prior.score(x_t, t).reshape(-1)
    h = 1e-5 * float(prior.schedule.sigma[t] + 0.05)
    for i in torch.randperm(prior.dim, generator=g)[:8].tolist():
        step = torch.zeros(prior.dim, dtype=torch.float64)
        step[i] = h
        step = step.reshape(x_t.shape)
        fd = (prior.noisy_log_prob(x_t + step, t) - prior.noisy_log_prob(x_t - step, t)) / (2 * h)
        assert math.isclose(float(fd), float(score[i]), rel_tol=1e-5, abs_tol=1e-5 * float(score.abs().max()))


@pytest.mark.parametrize("name", ["deblur", "inpaint", "mri"])
def test_posterior_equals_dense_bayes(prior, dense, name):
    op = operators()[name]
    problem = InverseProblem(op, Gaussian(0.05), prior)
    g = torch.Generator().manual_seed(7)
    x, comp = prior.sample_components(1, generator=g)
    y = problem.simulate(x, generator=g)
    post = exact_posterior(problem, y)
    assert isinstance(post, SharedCovarianceMixturePosterior)
    ref = exact_posterior(InverseProblem(op, Gaussian(0.05), dense), y)
    assert isinstance(ref, GaussianMixturePosterior)
    torch.testing.assert_close(post.weights, ref.weights, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(post.means, ref.means, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(post.covs, ref.covs, rtol=1e-7, atol=1e-11)
    torch.testing.assert_close(post.component_log_evidence, ref.component_log_evidence, rtol=1e-9, atol=1e-8)
    assert math.isclose(post.lesion_probability, float(ref.weights[1:].sum()), rel_tol=1e-7, abs_tol=1e-12)
    # marginal CDF and its inverse
    probe = post.sample(3, generator=g)
    torch.testing.assert_close(post.cdf(probe), ref.cdf(probe), rtol=1e-9, atol=1e-12)
    lo, hi = post.interval(0.9)
    torch.testing.assert_close(post.cdf(lo[None])[0], torch.full_like(lo, 0.05), rtol=0, atol=1e-9)
    torch.testing.assert_close(post.cdf(hi[None])[0], torch.full_like(hi, 0.95), rtol=0, atol=1e-9)
    torch.testing.assert_close(post.variance, ref.variance, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(post.cov, ref.cov, rtol=1e-7, atol=1e-11)


def test_exact_draws_cover_exact_intervals_at_nominal_rate(prior):
    op = operators()["mri"]
    problem = InverseProblem(op, Gaussian(0.05), prior)
    g = torch.Generator().manual_seed(11)
    y = problem.simulate(prior.sample_n(1, generator=g), generator=g)
    post = LesionPosteriorSolver(problem).posterior(y)
    n = 4000
    draws = post.sample(n, generator=g)
    lo, hi = post.interval(0.9)
    inside = ((draws >= lo) & (draws <= hi)).double().reshape(n, -1)
    per_pixel = inside.mean(0)  # each ~ Binomial(n, 0.9) / n
    sd = math.sqrt(0.9 * 0.1 / n)
    assert bool(((per_pixel - 0.9).abs() <= 4.5 * sd).all()), (per_pixel.min(), per_pixel.max())
    assert abs(float(per_pixel.mean()) - 0.9) <= 4.5 * sd
    # the component frequencies follow the exact weights
    _, comp = post.sample_components(n, generator=g)
    lesion = float((comp > 0).double().mean())
    assert abs(lesion - post.lesion_probability) <= 4.5 * math.sqrt(0.25 / n) + 1e-12


def test_bad_inputs_raise(prior):
    bump, masks = lesion_offsets(SIZE, grid_locations(SIZE, 1), radius=1.0, contrast=0.3)
    with pytest.raises(ValueError, match="strictly positive"):
        LesionMixturePrior(torch.zeros(1, SIZE, SIZE), 0.0, bump)
    with pytest.raises(ValueError, match="lesion_weight"):
        LesionMixturePrior(prior.power_spectrum, 0.0, bump, lesion_weight=1.0)
    with pytest.raises(Exception, match="offsets"):
        LesionMixturePrior(prior.power_spectrum, 0.0, bump[:, 0])
    with pytest.raises(ValueError, match="square"):
        grid_locations(SIZE, 5)
    gaussian_problem = InverseProblem(operators()["deblur"], Gaussian(0.05), GaussianMixturePrior(
        torch.ones(1), torch.zeros(1, 1, SIZE, SIZE), 1.0))
    with pytest.raises(TypeError, match="LesionMixturePrior"):
        LesionPosteriorSolver(gaussian_problem)


def test_loadable_by_name():
    from bayesinv.studies.runner import resolve_prior

    loaded = resolve_prior("phantom-lesion-mixture", SIZE)
    assert isinstance(loaded, LesionMixturePrior) and tuple(loaded.event_shape) == (1, SIZE, SIZE)
    assert loaded.fit_info["size"] == SIZE and loaded.num_components == 33
