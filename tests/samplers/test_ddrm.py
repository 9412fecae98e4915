"""DDRM against a transcription of the authors' ``efficient_generalized_steps`` and on the mixture testbed."""

from __future__ import annotations

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.builders import run_sampler_cases
from bayesinv.errors import ShapeError
from bayesinv.noise import Poisson
from bayesinv.operators.base import LinearOperator
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, exact_posterior, vp_linear
from bayesinv.samplers.ddrm import ddrm_timesteps, sample_ddrm, sample_ddrm_cases
from bayesinv.samplers.score_sde import sample_score_sde
from tests.samplers.helpers import DFTOperator, TinyNetworkPrior, mixture_bed, sw_ratio


def reference_ddrm(prior, matrix, y, sigma_0, eta, eta_b, steps, n, generator):
    """Kawar et al.'s ``efficient_generalized_steps`` for a dense real matrix, spectral noise ``V^T z``."""
    u, singulars, vh = torch.linalg.svd(matrix, full_matrices=True)
    dim = matrix.shape[1]
    Sigma = torch.zeros(dim, dtype=torch.float64)
    Sigma[: singulars.shape[0]] = singulars
    U_t_y = y @ u
    Sig_inv_U_t_y = U_t_y / singulars
    abar = prior.schedule.alphas_cumprod
    seq = [i * (abar.shape[0] // steps) for i in range(steps)]

    def randn_spectral():
        return torch.randn(n, dim, generator=generator, dtype=torch.float64) @ vh.T

    # x_T from q(x_T | y); the authors divide by sigma_T, bayesinv multiplies by sqrt(abar_T) (documented)
    largest_sigma = ((1 - abar[seq[-1]]) / abar[seq[-1]]).sqrt()
    large = singulars * largest_sigma > sigma_0
    inv_singulars_and_zero = torch.zeros(dim, dtype=torch.float64)
    inv_singulars_and_zero[: singulars.shape[0]][large] = sigma_0 / singulars[large]
    init_y = torch.zeros(n, dim, dtype=torch.float64)
    init_y[:, : singulars.shape[0]][:, large] = (U_t_y[:, large] / singulars[large]).expand(n, -1)
    remaining_s = (largest_sigma**2 - inv_singulars_and_zero**2).clamp_min(0).sqrt()
    init_y = init_y + remaining_s * randn_spectral()
    x = abar[seq[-1]].sqrt() * (init_y @ vh)
    seq_next = [-1] + seq[:-1]
    for i, j in zip(reversed(seq), reversed(seq_next), strict=True):
        at = abar[i]
        at_next = abar[j] if j >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x0_t = prior.denoise(x, i)
        et = (x - at.sqrt() * x0_t) / (1 - at).sqrt()
        sigma_next = (1 - at_next).sqrt() / at_next.sqrt()
        V_t_x0 = x0_t @ vh.T
        SVt_x0 = (V_t_x0 * Sigma)[:, : U_t_y.shape[1]]
        falses = torch.zeros(dim - singulars.shape[0], dtype=torch.bool)
        cond_before_lite = singulars * sigma_next > sigma_0
        cond_after_lite = singulars * sigma_next < sigma_0
        cond_before = torch.hstack((cond_before_lite, falses))
        cond_after = torch.hstack((cond_after_lite, falses))
        std_nextC = sigma_next * eta
        sigma_tilde_nextC = torch.sqrt(sigma_next**2 - std_nextC**2)
        std_nextA = sigma_next * eta
        sigma_tilde_nextA = torch.sqrt(sigma_next**2 - std_nextA**2)
        diff_sigma_t_nextB = torch.sqrt(sigma_next**2 - sigma_0**2 / singulars[cond_before_lite] ** 2 * eta_b**2)
        noise = randn_spectral()
        Vt_xt_mod_next = V_t_x0 + sigma_tilde_nextC * (et @ vh.T) + std_nextC * noise
        Vt_xt_mod_next[:, cond_after] = (V_t_x0[:, cond_after] + sigma_tilde_nextA
                                         * ((U_t_y - SVt_x0) / sigma_0)[:, cond_after_lite]
                                         + std_nextA * noise[:, cond_after])
        Vt_xt_mod_next[:, cond_before] = (Sig_inv_U_t_y[:, cond_before_lite] * eta_b
                                          + (1 - eta_b) * V_t_x0[:, cond_before]
                                          + diff_sigma_t_nextB * noise[:, cond_before])
        x = at_next.sqrt() * (Vt_xt_mod_next @ vh)
    return x


@pytest.mark.parametrize(("eta", "eta_b", "sigma"), [(0.85, 1.0, 0.2), (0.5, 0.7, 0.05)])
def test_ddrm_matches_the_authors_update(eta, eta_b, sigma, generator):
    prior = TinyNetworkPrior(5, generator, schedule=vp_linear(200, 1e-4, 0.05))
    matrix = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    problem = InverseProblem(MatrixOperator(matrix), Gaussian(sigma), prior)
    y = problem.simulate(torch.randn(1, 5, generator=generator, dtype=torch.float64), generator=generator)
    expected = reference_ddrm(prior, matrix, y, sigma, eta, eta_b, 20, 4, torch.Generator().manual_seed(3))
    post = sample_ddrm(problem, y, num_samples=4, eta=eta, eta_b=eta_b, generator=torch.Generator().manual_seed(3),
                       progress=False)
    assert post.nfe == 20 and post.settings["eta"] == eta
    assert torch.allclose(post.samples[:, 0], expected, rtol=1e-8, atol=1e-10)


def test_timesteps_follow_the_authors_skip_schedule():
    assert ddrm_timesteps(1000, 20) == list(range(950, -1, -50))
    assert ddrm_timesteps(1000, 3) == [666, 333, 0]


def test_last_step_returns_the_denoised_estimate(generator):
    prior = GaussianPrior(torch.zeros(3), 1.0)
    problem = InverseProblem(MatrixOperator(torch.randn(2, 3, generator=generator, dtype=torch.float64)),
                             Gaussian(0.1), prior)
    seen = []
    post = sample_ddrm(problem, torch.ones(1, 2, dtype=torch.float64), num_samples=3, generator=generator,
                       progress=False, callback=lambda i, x, x0: seen.append((x.clone(), x0.clone())))
    assert torch.equal(post.samples[:, 0], seen[-1][0]) and torch.allclose(seen[-1][0], seen[-1][1])


def test_complex_fourier_operator_gives_real_samples_close_to_the_exact_posterior(generator):
    """Single-coil 1-D MRI: complex singular vectors, real images; an isotropic Gaussian prior."""
    prior = GaussianPrior(torch.zeros(8), 1.0)
    problem = InverseProblem(DFTOperator(8, [0, 1, 7]), Gaussian(0.05), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    post = sample_ddrm(problem, y, num_samples=2000, generator=torch.Generator().manual_seed(0), progress=False)
    exact = exact_posterior(problem, y)
    assert not post.samples.is_complex() and bool(torch.isfinite(post.samples).all())
    # DDRM is not exact: its mean is within 0.1 prior std and its variances within a factor 2
    assert float((post.mean() - exact.mean).abs().max()) < 0.1
    ratio = post.std() ** 2 / exact.variance
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio


def test_ddrm_rejects_operators_without_svd_and_non_gaussian_noise(generator):
    class NoSVD(LinearOperator):
        def __init__(self):
            super().__init__((2,), (2,))

        def _forward(self, x):
            return 2 * x

        def _adjoint(self, y):
            return 2 * y

    prior = GaussianPrior(torch.zeros(2), 1.0)
    y = torch.ones(1, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="SVD"):
        sample_ddrm(InverseProblem(NoSVD(), Gaussian(0.1), prior), y, num_samples=1, generator=generator)
    with pytest.raises(TypeError, match="Gaussian"):
        sample_ddrm(InverseProblem(MatrixOperator(torch.eye(2, dtype=torch.float64)), Poisson(), prior), y,
                    num_samples=1, generator=generator)


def test_ddrm_with_a_null_operator_reproduces_the_mixture_prior():
    """All coefficients missing: DDRM is DDIM(eta) on the prior (100 steps; eta = 0.85)."""
    bed = mixture_bed(1)
    problem = InverseProblem(MatrixOperator(torch.zeros(1, 8, dtype=torch.float64)), Gaussian(1.0), bed.problem.prior)
    post = sample_ddrm(problem, torch.zeros(1, 1, dtype=torch.float64), num_samples=1000, steps=100,
                       generator=torch.Generator().manual_seed(0), progress=False)
    distance, floor, ratio = sw_ratio(post, bed.problem.prior)
    assert ratio < 1.5, (distance, floor)


@pytest.mark.parametrize("num_measurements", [1, 4])
def test_ddrm_beats_the_prior_on_the_mixture_testbed(num_measurements):
    bed = mixture_bed(num_measurements)
    post = sample_ddrm(bed.problem, bed.y, num_samples=1000, generator=torch.Generator().manual_seed(0),
                       progress=False)
    prior_draws = bed.problem.prior.sample_n(1000, generator=torch.Generator().manual_seed(4))
    d_ddrm, floor, _ = sw_ratio(post, bed.posterior)
    d_prior, _, _ = sw_ratio(prior_draws, bed.posterior)
    assert d_ddrm < 0.6 * d_prior, (d_ddrm, d_prior, floor)


# -- several cases per call (sample_ddrm_cases) ----------------------------------------------------------------


def _cases_problem(generator, num_cases=3):
    prior = TinyNetworkPrior(5, generator, schedule=vp_linear(200, 1e-4, 0.05))
    matrix = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    problem = InverseProblem(MatrixOperator(matrix), Gaussian(0.2), prior)
    y = problem.simulate(torch.randn(num_cases, 5, generator=generator, dtype=torch.float64), generator=generator)
    return problem, matrix, y


@pytest.mark.parametrize("batch_size", [None, 5])
def test_cases_follow_the_authors_update_for_each_case(batch_size, generator):
    """G cases in one call: chain c runs the authors' update with case c // num_samples's measurement, and the
    generator is read chunk by chunk (chunks of 5 chains mix cases 0/1 and 1/2)."""
    problem, matrix, y = _cases_problem(generator)
    n = 4
    y_chains = y.repeat_interleave(n, 0)  # (12, 3): case-major chains
    gen = torch.Generator().manual_seed(3)
    size = 12 if batch_size is None else batch_size
    expected = torch.cat([reference_ddrm(problem.prior, matrix, y_chains[s : s + size], 0.2, 0.85, 1.0, 20,
                                         y_chains[s : s + size].shape[0], gen) for s in range(0, 12, size)])
    posts = sample_ddrm_cases(problem, y, num_samples=n, batch_size=batch_size,
                              generator=torch.Generator().manual_seed(3), progress=False)
    assert len(posts) == 3 and all(p.samples.shape == (n, 1, 5) and p.nfe == 20 for p in posts)
    assert [p.extras["case_in_call"] for p in posts] == [0, 1, 2] and posts[0].extras["cases_per_call"] == 3
    torch.testing.assert_close(torch.cat([p.samples[:, 0] for p in posts]), expected, rtol=1e-8, atol=1e-10)


def test_one_case_per_call_is_sample_ddrm_bit_for_bit(generator):
    problem, _, y = _cases_problem(generator, num_cases=1)
    for batch_size in (None, 3):
        single = sample_ddrm(problem, y, num_samples=7, batch_size=batch_size,
                             generator=torch.Generator().manual_seed(5), progress=False)
        (batched,) = sample_ddrm_cases(problem, y, num_samples=7, batch_size=batch_size,
                                       generator=torch.Generator().manual_seed(5), progress=False)
        assert torch.equal(single.samples, batched.samples)
        assert batched.settings == single.settings and batched.extras == single.extras == {}


def test_cases_chunked_one_case_at_a_time_are_successive_single_case_runs(generator):
    """With batch_size = num_samples each chunk is one case, drawn in order from the one generator: what
    successive sample_ddrm calls sharing that generator draw, up to rounding (``U^H y`` of 3 rows vs of 1)."""
    problem, _, y = _cases_problem(generator)
    gen = torch.Generator().manual_seed(8)
    singles = [sample_ddrm(problem, y[i : i + 1], num_samples=4, generator=gen, progress=False) for i in range(3)]
    posts = sample_ddrm_cases(problem, y, num_samples=4, batch_size=4, generator=torch.Generator().manual_seed(8),
                              progress=False)
    for post, single in zip(posts, singles, strict=True):
        torch.testing.assert_close(post.samples, single.samples, rtol=1e-12, atol=1e-13)


def test_each_case_in_a_call_is_close_to_its_own_exact_posterior(generator):
    """Three MRI-like cases in one call (complex singular vectors, isotropic Gaussian prior): each case's DDRM
    draws sit at that case's closed-form posterior (the tolerance of the one-case test above), not another's."""
    prior = GaussianPrior(torch.zeros(8), 1.0)
    problem = InverseProblem(DFTOperator(8, [0, 1, 7]), Gaussian(0.05), prior)
    y = problem.simulate(prior.sample_n(3, generator=generator), generator=generator)
    posts = sample_ddrm_cases(problem, y, num_samples=2000, generator=torch.Generator().manual_seed(0),
                              progress=False)
    exact = [exact_posterior(problem, y[i : i + 1]) for i in range(3)]
    for i, post in enumerate(posts):
        errors = [float((post.mean() - e.mean).abs().max()) for e in exact]
        assert errors[i] < 0.1 and min(e for j, e in enumerate(errors) if j != i) > 0.3, errors
        ratio = post.std() ** 2 / exact[i].variance
        assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio


def test_bad_case_batches_are_refused_with_the_sampler_named(generator):
    problem, _, y = _cases_problem(generator)
    with pytest.raises(ShapeError, match=r"ddrm: y must hold one measurement .* ddrm runs one case per call"):
        sample_ddrm(problem, y, num_samples=2, generator=generator, progress=False)
    with pytest.raises(ShapeError, match=r"y must have shape \(3,\) or \(B, 3\), got \(3, 4\)"):
        sample_ddrm_cases(problem, torch.zeros(3, 4, dtype=torch.float64), num_samples=2, generator=generator)
    with pytest.raises(ShapeError, match=r"score_sde: y must hold one measurement"):
        sample_score_sde(problem, y, num_samples=2, steps=3, generator=generator, progress=False)
    with pytest.raises(ValueError, match=r"sampler 'smc' runs one case per call.*\['ddrm', 'dps'\]"):
        run_sampler_cases("smc", problem, y, num_samples=2, steps=3, generator=generator, options={})
