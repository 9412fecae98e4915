"""Langevin samplers against exact answers: MALA on Gaussian posteriors, ULA's known stationary law, PnP-ULA's
Moreau-Yosida target by quadrature, annealed Langevin on the mixture testbed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from bayesinv import Gaussian, InverseProblem
from bayesinv.errors import NoDensityError
from bayesinv.operators import Identity
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, exact_posterior, vp_linear
from bayesinv.samplers.annealed_langevin import sample_annealed_langevin
from bayesinv.samplers.langevin import sample_mala, sample_pnp_ula, sample_ula
from tests.samplers.helpers import TinyNetworkPrior, flat_problem, gaussian_problem, mixture_bed, sw_ratio


def _z_scores(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z-scores of the sample mean and sample variance of ``n`` independent draws against exact moments."""
    n = samples.shape[0]
    z_mean = (samples.mean(0) - mean) / (var / n).sqrt()
    z_var = (samples.var(0) - var) / (var * math.sqrt(2 / (n - 1)))
    return z_mean.abs(), z_var.abs()


def test_mala_matches_the_exact_gaussian_posterior(generator):
    problem, y = gaussian_problem(generator, d=5, m=3, sigma=0.3)
    exact = exact_posterior(problem, y)
    post = sample_mala(problem, y, num_samples=2000, steps=300, generator=torch.Generator().manual_seed(0),
                       progress=False)
    z_mean, z_var = _z_scores(post.samples[:, 0], exact.mean, exact.variance)
    assert float(z_mean.max()) < 4.5 and float(z_var.max()) < 4.5, (z_mean, z_var)
    assert abs(post.extras["acceptance_rate"] - 0.574) < 0.05


def test_mala_keeps_exact_posterior_draws_on_the_mixture_testbed():
    """Stationarity on a multimodal target: chains started at exact posterior draws stay distributed exactly."""
    bed = mixture_bed(4)
    init = bed.posterior.sample(1000, generator=torch.Generator().manual_seed(7))
    post = sample_mala(bed.problem, bed.y, num_samples=1000, steps=100, init=init,
                       generator=torch.Generator().manual_seed(0), progress=False)
    distance, floor, ratio = sw_ratio(post, bed.posterior)
    assert ratio < 1.5, (distance, floor)
    assert not torch.equal(post.samples[:, 0], init), "the chains did not move"


def test_mala_draws_thinning_and_argument_errors(generator):
    problem = InverseProblem(Identity((2,)), Gaussian(0.5), GaussianPrior(torch.zeros(2), 1.0))
    y = torch.zeros(1, 2, dtype=torch.float64)
    post = sample_mala(problem, y, num_samples=3, steps=30, num_draws=4, thin=5, generator=generator, progress=False)
    assert post.samples.shape == (3, 4, 2) and post.nfe == 30
    with pytest.raises(ValueError, match="num_draws"):
        sample_mala(problem, y, num_samples=3, steps=10, num_draws=4, thin=5, generator=generator)
    with pytest.raises(ValueError, match="init must be"):
        sample_mala(problem, y, num_samples=3, steps=10, init=torch.zeros(2, 2), generator=generator)
    net = InverseProblem(Identity((2,)), Gaussian(0.5), TinyNetworkPrior(2, generator))
    with pytest.raises(NoDensityError, match="explicit log_prob"):
        sample_mala(net, y, num_samples=2, steps=5, generator=generator, progress=False)


def test_ula_has_the_known_stationary_law_of_the_smoothed_gaussian_posterior(generator):
    """For a Gaussian prior N(mu, S), ULA with the denoiser at level gamma targets the posterior with prior
    N(mu, S + gamma^2 I) (Tweedie), and its stationary law is N(m, (P - delta P^2 / 2)^-1) exactly, where P
    is that posterior's precision and m its mean."""
    problem, y = gaussian_problem(generator, d=3, m=2, sigma=0.5)
    post = sample_ula(problem, y, num_samples=4000, steps=400, noise_level=0.3,
                      generator=torch.Generator().manual_seed(0), progress=False)
    gamma, delta = post.settings["noise_level"], post.settings["step_size"]
    prior = problem.prior
    matrix = problem.operator.to_matrix()
    smoothed = torch.linalg.inv(prior.covariance_matrix + gamma**2 * torch.eye(3, dtype=torch.float64))
    precision = smoothed + matrix.T @ matrix / 0.25
    mean = torch.linalg.solve(precision, smoothed @ prior.mean_vector + matrix.T @ y[0] / 0.25)
    cov = torch.linalg.inv(precision - delta * precision @ precision / 2)
    z_mean, z_var = _z_scores(post.samples[:, 0], mean, torch.diagonal(cov))
    assert float(z_mean.max()) < 4.5 and float(z_var.max()) < 4.5, (z_mean, z_var)


def test_pnp_ula_box_penalty_matches_quadrature():
    """1-D: prior N(2, 1) seen at level gamma, no informative data, box C = [0, 1] with weight lambda: the target
    is exp(-(x-2)^2 / (2 (1 + gamma^2)) - dist(x, C)^2 / (2 lambda)); a small step makes ULA's bias negligible."""
    prior = GaussianPrior(torch.full((1,), 2.0), 1.0)
    problem = InverseProblem(Identity((1,)), Gaussian(1e3), prior)
    lam = 0.5
    post = sample_pnp_ula(problem, torch.zeros(1, 1, dtype=torch.float64), num_samples=4000, steps=600,
                          noise_level=0.1, box=(0.0, 1.0), box_weight=lam, step_size=0.02,
                          generator=torch.Generator().manual_seed(0), progress=False)
    var = 1 + post.settings["noise_level"] ** 2

    def density(x):
        dist = max(0.0, x - 1.0) + max(0.0, -x)
        return math.exp(-((x - 2) ** 2) / (2 * var) - dist**2 / (2 * lam))

    norm = integrate.quad(density, -10, 12, points=[0, 1])[0]
    mean = integrate.quad(lambda x: x * density(x), -10, 12, points=[0, 1])[0] / norm
    second = integrate.quad(lambda x: x * x * density(x), -10, 12, points=[0, 1])[0] / norm
    sd = math.sqrt(second - mean**2)
    samples = post.samples[:, 0, 0].numpy()
    assert abs(samples.mean() - mean) < 4.5 * sd / math.sqrt(4000) + 0.01 * sd, (samples.mean(), mean)
    assert abs(samples.std() / sd - 1) < 0.05
    assert mean < 1.6  # the penalty matters: the prior mean is 2


def test_pnp_ula_needs_a_step_size_when_the_likelihood_is_not_gaussian(generator):
    from bayesinv.noise import Poisson

    problem = InverseProblem(Identity((2,)), Poisson(), GaussianPrior(torch.ones(2), 1.0))
    with pytest.raises(ValueError, match="step_size"):
        sample_pnp_ula(problem, torch.ones(1, 2, dtype=torch.float64), num_samples=2, generator=generator)


def test_annealed_langevin_without_data_reproduces_the_mixture_prior():
    bed = mixture_bed(1)
    post = sample_annealed_langevin(flat_problem(bed), bed.y, num_samples=600,
                                    generator=torch.Generator().manual_seed(0), progress=False)
    distance, floor, ratio = sw_ratio(post, bed.problem.prior)
    assert ratio < 1.5, (distance, floor)
    assert post.nfe == 1000


@pytest.mark.parametrize(("num_measurements", "inflation", "margin"),
                         [(4, "jalal", 0.5), (4, "operator", 0.25), (1, "operator", 0.7)])
def test_annealed_langevin_beats_the_prior_on_the_mixture_testbed(num_measurements, inflation, margin):
    bed = mixture_bed(num_measurements)
    post = sample_annealed_langevin(bed.problem, bed.y, num_samples=500, likelihood_inflation=inflation,
                                    generator=torch.Generator().manual_seed(0), progress=False)
    prior_draws = bed.problem.prior.sample_n(500, generator=torch.Generator().manual_seed(4))
    d_ald, floor, _ = sw_ratio(post, bed.posterior)
    d_prior, _, _ = sw_ratio(prior_draws, bed.posterior)
    assert d_ald < margin * d_prior, (d_ald, d_prior, floor)
    assert np.isfinite(d_ald)


def test_annealed_langevin_starts_at_the_first_noise_level():
    # regression: chains started from N(0, 1/alpha_T^2) (the schedule's top) whatever noise_levels said
    from bayesinv.operators import Identity

    schedule = vp_linear(50, 1e-3, 0.3)
    prior = GaussianPrior(torch.zeros(2, dtype=torch.float64), 1.0, schedule=schedule)
    problem = InverseProblem(Identity((2,)), Gaussian(1e3), prior)
    post = sample_annealed_langevin(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=4000, steps=1,
                                    steps_per_level=1, step_size=1e-12, noise_levels=(0.5, 0.5),
                                    generator=torch.Generator().manual_seed(0), progress=False)
    gamma = post.settings["noise_levels"][0]  # 0.5 snapped to the nearest timestep
    assert abs(gamma - 0.5) < 0.05
    z = (post.samples[:, 0].var(0) / gamma**2 - 1) / math.sqrt(2 / 3999)  # chi-squared variance test
    assert float(z.abs().max()) < 4.5 and float(post.samples.mean().abs()) < 4.5 * gamma / math.sqrt(8000)


def test_default_top_level_is_capped_at_sqrt_d_for_network_priors(generator):
    """Song & Ermon's gamma_1 ~ the largest distance between data points, <= sqrt(d) for images in [0, 1]:
    a network prior (no variance) starts there; an analytic prior keeps the schedule's top level."""
    schedule = vp_linear(1000)  # DDPM's: top level ~157
    levels = schedule.sigma / schedule.alpha
    network = TinyNetworkPrior(9, generator, schedule=schedule)
    signed = TinyNetworkPrior(9, generator, schedule=schedule)
    signed.pixel_range = (-1.0, 1.0)  # e.g. a diffusers checkpoint: the largest distance is 2 sqrt(d)
    analytic = GaussianPrior(torch.zeros(9, dtype=torch.float64), 1.0, schedule=schedule)
    assert float(levels.max()) > 3 * 10
    for prior, expected in ((network, float(levels[schedule.timestep_for_noise_level(3.0)])),
                            (signed, float(levels[schedule.timestep_for_noise_level(6.0)])),
                            (analytic, float(levels.max()))):
        problem = InverseProblem(Identity((9,)), Gaussian(0.1), prior)
        post = sample_annealed_langevin(problem, torch.zeros(1, 9, dtype=torch.float64), num_samples=1, steps=2,
                                        steps_per_level=1, generator=generator, progress=False)
        assert post.settings["noise_levels"][0] == pytest.approx(expected)
        assert post.settings["noise_levels"][1] == pytest.approx(float(levels.min()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_annealed_langevin_is_stable_when_the_operator_norm_is_large(dtype):
    """The new user's try: MatrixOperator (random 4 x 8 Gaussian, ||A||^2 ~ 14) + Gaussian(0.1) + the 8-d mixture.
    Song & Ermon's step alone is unstable here (eta (1/gamma^2 + L_y) up to 0.2 (1 + ||A||^2) > 2); the capped
    step keeps eta_i (1/gamma_i^2 + L_y,i) <= 1 and the default run finishes near the exact posterior's scale."""
    from bayesinv.operators.base import operator_norm_squared
    from bayesinv.priors import grid_mixture

    g = torch.Generator().manual_seed(0)
    prior = grid_mixture(8, generator=g)
    matrix = torch.randn(4, 8, generator=g, dtype=dtype)
    problem = InverseProblem(MatrixOperator(matrix), Gaussian(0.1), prior)
    y = problem.simulate(prior.sample_n(1, generator=g).to(dtype), generator=g)
    post = sample_annealed_langevin(problem, y, num_samples=4, generator=torch.Generator().manual_seed(1),
                                    progress=False)
    assert post.samples.dtype == dtype and bool(torch.isfinite(post.samples).all())
    assert float(post.samples.abs().max()) < 20  # the mixture's means lie in [-8, 8]
    norm2 = operator_norm_squared(problem.operator, y, generator=g)
    assert norm2 > 10
    gammas = _snapped_levels(prior.schedule, *post.settings["noise_levels"])
    for eta, gamma in zip(post.settings["step_sizes"], gammas, strict=True):
        lip = 1 / gamma**2 + norm2 / (0.01 + gamma**2)
        assert eta * lip <= 1 + 1e-6
        assert eta == pytest.approx(min(2e-5 * gamma**2 / gammas[-1] ** 2, 1 / lip), rel=1e-6)


def _snapped_levels(schedule, high: float, low: float, num: int = 10) -> list[float]:
    """The sampler's noise levels: geometric from high to low, each snapped to the nearest timestep's level."""
    levels = schedule.sigma / schedule.alpha
    targets = torch.logspace(math.log10(high), math.log10(low), num, dtype=torch.float64)
    return [float(levels[schedule.timestep_for_noise_level(float(t))]) for t in targets]


def test_the_step_cap_leaves_song_and_ermon_steps_for_a_unit_norm_operator():
    bed = mixture_bed(2)
    post = sample_annealed_langevin(bed.problem, bed.y, num_samples=2, steps_per_level=2,
                                    generator=torch.Generator().manual_seed(0), progress=False)
    levels = _snapped_levels(bed.problem.prior.schedule, *post.settings["noise_levels"])
    expected = [2e-5 * g**2 / levels[-1] ** 2 for g in levels]
    assert post.settings["step_sizes"] == pytest.approx(expected, rel=1e-9)
