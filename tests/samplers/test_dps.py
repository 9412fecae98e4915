"""DPS against a line-by-line Algorithm 1 of Chung et al. (2023), exact equivalences and the mixture mixture_bed."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.errors import SamplerDivergence
from bayesinv.noise import Poisson
from bayesinv.operators.base import Operator
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, vp_linear
from bayesinv.samplers.dps import TUNED_GUIDANCE_SCALES, default_guidance_scale, sample_dps, sample_dps_cases
from tests.samplers.helpers import DFTOperator, TinyNetworkPrior, flat_problem, sw_ratio, mixture_bed


class Squared(Operator):
    """A nonlinear operator ``A(x) = (M x)^2`` (phase-retrieval-like: intensities)."""

    def __init__(self, matrix):
        super().__init__((matrix.shape[1],), (matrix.shape[0],))
        self.matrix = matrix

    def _forward(self, x):
        return (x @ self.matrix.T) ** 2


def algorithm_1(prior, operator, y, zeta, n, generator):
    """Chung et al. (2023), Algorithm 1 in Ho et al.'s notation, with the authors' non-squared norm."""
    betas = prior.schedule.betas
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    num = betas.shape[0]
    x = torch.randn(n, *prior.event_shape, generator=generator, dtype=torch.float64)  # x_N ~ N(0, I)
    for i in reversed(range(num)):
        x = x.detach().requires_grad_(True)
        s_hat = prior.score(x, i)
        x0_hat = (x + (1 - abar[i]) * s_hat) / abar[i].sqrt()
        z = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        abar_prev = abar[i - 1] if i > 0 else torch.tensor(1.0, dtype=torch.float64)
        sigma2 = betas[i] * (1 - abar_prev) / (1 - abar[i])
        x_prime = (alphas[i].sqrt() * (1 - abar_prev) / (1 - abar[i]) * x
                   + abar_prev.sqrt() * betas[i] / (1 - abar[i]) * x0_hat + sigma2.sqrt() * z)
        norm = ((y - operator(x0_hat)) ** 2).sum(1).sqrt()
        (grad,) = torch.autograd.grad(norm.sum(), x)
        x = (x_prime - zeta * grad).detach()
    return x


@pytest.mark.parametrize("nonlinear", [False, True])
def test_dps_matches_algorithm_1_step_for_step(nonlinear, generator):
    # a random network's draws are not images in [0, 1], and the squared operator throws chains far out: declare a
    # range wide enough that the divergence check (tested elsewhere) lets this step-for-step comparison run
    prior = TinyNetworkPrior(5, generator, pixel_range=(-100.0, 100.0))
    matrix = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    op = Squared(matrix) if nonlinear else MatrixOperator(matrix)
    problem = InverseProblem(op, Gaussian(0.1), prior)
    y = problem.simulate(torch.randn(1, 5, generator=generator, dtype=torch.float64), generator=generator)
    expected = algorithm_1(prior, op, y, 0.4, 6, torch.Generator().manual_seed(9))
    post = sample_dps(problem, y, num_samples=6, generator=torch.Generator().manual_seed(9), guidance_scale=0.4,
                      progress=False)
    assert post.nfe == 40 and post.samples.shape == (6, 1, 5)
    assert torch.allclose(post.samples[:, 0], expected, rtol=1e-9, atol=1e-11)


def _small_problem(generator, noise=None, operator=None):
    prior = GaussianPrior(torch.zeros(4), 2.0, schedule=vp_linear(30, 1e-3, 0.3))
    op = operator or MatrixOperator(torch.randn(3, 4, generator=generator, dtype=torch.float64))
    return InverseProblem(op, noise or Gaussian(0.3), prior)


def test_deviance_guidance_is_the_norm_over_sigma(generator):
    problem = _small_problem(generator)
    y = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    run = lambda **kw: sample_dps(problem, y, num_samples=4, generator=torch.Generator().manual_seed(1),  # noqa: E731
                                  progress=False, **kw).samples
    assert torch.allclose(run(guidance="norm", guidance_scale=0.5), run(guidance="deviance", guidance_scale=0.15),
                          rtol=1e-9, atol=1e-12)


def test_latent_sigma_and_nuisance_held_fixed_equal_the_known_problem(generator):
    matrix = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    known = _small_problem(generator, operator=MatrixOperator(matrix))
    # the factory receives per-chain values (B,); the chains share one kernel here
    latent = InverseProblem(lambda scale: MatrixOperator(matrix * float(scale.reshape(-1)[0])),
                            Gaussian(dist.LogNormal(-1.0, 0.5)),
                            known.prior, nuisance={"scale": dist.LogNormal(0.0, 0.1)})
    y = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    a = sample_dps(known, y, num_samples=3, generator=torch.Generator().manual_seed(2), guidance="deviance",
                   progress=False)
    b = sample_dps(latent, y, num_samples=3, generator=torch.Generator().manual_seed(2), guidance="deviance",
                   latents={"sigma": 0.3, "scale": 1.0}, guidance_scale=a.settings["guidance_scale"], progress=False)
    assert torch.allclose(a.samples, b.samples, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="latents="):
        sample_dps(latent, y, num_samples=3, generator=torch.Generator().manual_seed(2), progress=False)


def test_complex_measurements_equal_the_stacked_real_problem(generator):
    op = DFTOperator(6, [0, 1, 2, 5])
    matrix = op.to_matrix()
    prior = GaussianPrior(torch.zeros(6), 1.0, schedule=vp_linear(30, 1e-3, 0.3))
    complex_problem = InverseProblem(op, Gaussian(0.1), prior)
    real_problem = InverseProblem(MatrixOperator(torch.cat([matrix.real, matrix.imag])), Gaussian(0.1), prior)
    y = complex_problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    a = sample_dps(complex_problem, y, num_samples=3, generator=torch.Generator().manual_seed(3), progress=False)
    b = sample_dps(real_problem, torch.cat([y.real, y.imag], 1), num_samples=3,
                   generator=torch.Generator().manual_seed(3), progress=False)
    assert not a.samples.is_complex() and torch.allclose(a.samples, b.samples, rtol=1e-9, atol=1e-12)


def test_poisson_noise_uses_the_deviance(generator):
    problem = _small_problem(generator, noise=Poisson(gain=50.0),
                             operator=MatrixOperator(torch.rand(3, 4, generator=generator, dtype=torch.float64)))
    y = problem.simulate(torch.rand(1, 4, generator=generator, dtype=torch.float64), generator=generator)
    # the default zeta' = 1 throws these chains to |x| ~ 40-60 (prior std 1.4): SamplerDivergence; 0.1 stays in range
    post = sample_dps(problem, y, num_samples=4, generator=generator, progress=False, guidance_scale=0.1)
    assert post.settings["guidance"] == "deviance" and bool(torch.isfinite(post.samples).all())


def test_divergence_raises_at_the_first_bad_step(generator):
    class Exploding(GaussianPrior):
        def _denoise(self, x_t, t):
            out = super()._denoise(x_t, t)
            return out * float("inf") if int(t) < 10 else out

    prior = Exploding(torch.zeros(2), 1.0, schedule=vp_linear(30, 1e-3, 0.3))
    problem = InverseProblem(MatrixOperator(torch.eye(2, dtype=torch.float64)), Gaussian(0.1), prior)
    with pytest.raises(SamplerDivergence, match="dps diverged at step 20") as info:
        sample_dps(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=2, generator=generator,
                   progress=False)
    assert info.value.last_good is not None and bool(torch.isfinite(info.value.last_good).all())


def test_default_guidance_scales_follow_the_authors_configs():
    names = {"InpaintingOperator": 0.5, "RandomMask": 0.5, "GaussianBlur": 0.3, "SuperResolution": 0.3,
             "PhaseRetrieval": 1.0, "MatrixOperator": 1.0}
    for cls_name, value in names.items():
        op = type(cls_name, (Operator,), {})((2,), (2,))
        assert default_guidance_scale(op) == value


def test_dps_without_guidance_reproduces_the_mixture_prior():
    bed = mixture_bed(1)
    post = sample_dps(bed.problem, bed.y, num_samples=1000, steps=200, guidance_scale=0.0,
                      generator=torch.Generator().manual_seed(0), progress=False)
    distance, floor, ratio = sw_ratio(post, bed.problem.prior)
    assert ratio < 1.5, (distance, floor)


@pytest.mark.parametrize("num_measurements", [1, 4])
def test_dps_beats_the_prior_on_the_mixture_testbed(num_measurements):
    bed = mixture_bed(num_measurements)
    post = sample_dps(bed.problem, bed.y, num_samples=500, steps=200, generator=torch.Generator().manual_seed(0),
                      progress=False)
    prior_draws = bed.problem.prior.sample_n(500, generator=torch.Generator().manual_seed(4))
    d_dps, floor, _ = sw_ratio(post, bed.posterior)
    d_prior, _, _ = sw_ratio(prior_draws, bed.posterior)
    assert d_dps < 0.5 * d_prior, (d_dps, d_prior, floor)
    assert math.isfinite(d_dps) and flat_problem(bed).noise.sigma == 1e4


def test_tuned_guidance_scales_apply_to_their_prior_and_steps_only():
    blur = type("Blur", (Operator,), {})((2,), (2,))
    for prior_name, by_steps in TUNED_GUIDANCE_SCALES.items():
        for steps, values in by_steps.items():
            if "Blur" in values:
                assert default_guidance_scale(blur, prior_name, steps) == values["Blur"]
            assert default_guidance_scale(blur, prior_name, steps + 1) == 0.3  # other steps: the authors' value
    assert default_guidance_scale(blur, "another-prior", 100) == 0.3


# -- several cases per call (sample_dps_cases) -----------------------------------------------------------------


def test_cases_follow_algorithm_1_with_each_chain_guided_by_its_own_case(generator):
    prior = TinyNetworkPrior(5, generator, pixel_range=(-100.0, 100.0))
    matrix = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    problem = InverseProblem(MatrixOperator(matrix), Gaussian(0.1), prior)
    y = problem.simulate(torch.randn(3, 5, generator=generator, dtype=torch.float64), generator=generator)
    expected = algorithm_1(prior, problem.operator, y.repeat_interleave(2, 0), 0.4, 6,
                           torch.Generator().manual_seed(9))
    posts = sample_dps_cases(problem, y, num_samples=2, generator=torch.Generator().manual_seed(9),
                             guidance_scale=0.4, progress=False)
    assert len(posts) == 3 and all(p.samples.shape == (2, 1, 5) and p.nfe == 40 for p in posts)
    assert torch.allclose(torch.cat([p.samples[:, 0] for p in posts]), expected, rtol=1e-9, atol=1e-11)


def test_one_case_per_call_is_sample_dps_bit_for_bit(generator):
    problem = _small_problem(generator)
    y = problem.simulate(torch.randn(1, 4, generator=generator, dtype=torch.float64), generator=generator)
    for batch_size in (None, 2):
        single = sample_dps(problem, y, num_samples=5, batch_size=batch_size,
                            generator=torch.Generator().manual_seed(4), progress=False)
        (batched,) = sample_dps_cases(problem, y, num_samples=5, batch_size=batch_size,
                                      generator=torch.Generator().manual_seed(4), progress=False)
        assert torch.equal(single.samples, batched.samples) and batched.settings == single.settings


def test_cases_with_fixed_latents_chunked_per_case_are_successive_single_case_runs(generator):
    """Latents given per chain ``(num_samples,)`` apply to every case; with batch_size = num_samples the call draws
    what successive sample_dps calls sharing the generator draw (up to rounding)."""
    matrix = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    known = _small_problem(generator, operator=MatrixOperator(matrix))
    latent = InverseProblem(lambda scale: MatrixOperator(matrix * float(scale.reshape(-1)[0])),
                            Gaussian(dist.LogNormal(-1.0, 0.5)), known.prior,
                            nuisance={"scale": dist.LogNormal(0.0, 0.1)})
    y = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    latents = {"sigma": torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64), "scale": 1.0}
    gen = torch.Generator().manual_seed(6)
    singles = [sample_dps(latent, y[i : i + 1], num_samples=3, generator=gen, guidance="deviance", latents=latents,
                          guidance_scale=0.2, progress=False) for i in range(2)]
    posts = sample_dps_cases(latent, y, num_samples=3, batch_size=3, generator=torch.Generator().manual_seed(6),
                             guidance="deviance", latents=latents, guidance_scale=0.2, progress=False)
    for post, single in zip(posts, singles, strict=True):
        torch.testing.assert_close(post.samples, single.samples, rtol=1e-10, atol=1e-12)
