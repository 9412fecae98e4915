"""Score-SDE with data consistency: the consistency map against dense and Fourier closed forms, the PC updates
against hand computations, prior reproduction and the mixture testbed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.errors import SamplerDivergence
from bayesinv.operators.base import Operator
from bayesinv.operators.blur import Blur
from bayesinv.operators.inpaint import Inpaint, random_mask
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, exact_posterior, ve_geometric, vp_linear
from bayesinv.samplers.score_sde import (ScoreSDEState, corrector_step, data_consistency, predictor_step,
                                         sample_score_sde, truncated_pinv)
from tests.samplers.helpers import DFTOperator, TinyNetworkPrior, flat_problem, mixture_bed, sw_ratio


def test_data_consistency_matches_dense_pseudo_inverse(generator):
    matrix = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    op, schedule = MatrixOperator(matrix), vp_linear(50)
    x = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    z = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    y = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    out = data_consistency(x, 20, op=op, y=y, schedule=schedule, weight=0.7, noise=z)
    a, s = float(schedule.alpha[20]), float(schedule.sigma[20])
    m, pinv = matrix.numpy(), np.linalg.pinv(matrix.numpy())
    y_t = a * y.numpy() + s * z.numpy() @ m.T
    expected = x.numpy() + 0.7 * (y_t - x.numpy() @ m.T) @ pinv.T
    assert np.allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_data_consistency_is_the_papers_kspace_merge(generator):
    """Song et al. 2022 eq. 9: T^-1[lambda Lambda y_t + (1 - lambda) Lambda T x + (I - Lambda) T x]."""
    rows = [0, 2, 3, 7]
    op, schedule = DFTOperator(8, rows), ve_geometric(50, 0.01, 10.0)
    x = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    z = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    y = op(torch.randn(1, 8, generator=generator, dtype=torch.float64))
    lam, t = 0.6, 30
    out = data_consistency(x, t, op=op, y=y, schedule=schedule, weight=lam, noise=z)
    y_t = y + float(schedule.sigma[t]) * op(z)
    kspace = torch.fft.fft(x.to(torch.complex128), norm="ortho")
    mask = torch.zeros(8, dtype=torch.bool)
    mask[rows] = True
    merged = kspace.clone()
    merged[:, mask] = lam * y_t + (1 - lam) * kspace[:, mask]
    expected = torch.fft.ifft(merged, norm="ortho").real
    assert torch.allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_predictor_and_corrector_are_the_stated_updates(generator):
    prior = GaussianPrior(torch.zeros(3), 2.0, schedule=vp_linear(100))
    x = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    z = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    abar = prior.schedule.alphas_cumprod
    score = prior.score(x, 60)
    beta = 1 - float(abar[60] / abar[50])
    out = predictor_step(ScoreSDEState(x, 60), 50, prior=prior, noise=z)
    assert torch.allclose(out.x, (2 - math.sqrt(1 - beta)) * x + beta * score + math.sqrt(beta) * z, rtol=1e-12)
    # the exact score of N(0, 2) at VP level t is -x / (2 abar + 1 - abar)
    assert torch.allclose(score, -x / (2 * abar[60] + 1 - abar[60]), rtol=1e-10)
    out = corrector_step(ScoreSDEState(x, 60), prior=prior, snr=0.3, noise=z)
    a = float(abar[60] / abar[59])
    eps = 2 * a * (0.3 * z.norm(dim=1) / score.norm(dim=1)) ** 2
    assert torch.allclose(out.x, x + eps[:, None] * score + (2 * eps[:, None]).sqrt() * z, rtol=1e-12)
    ve = GaussianPrior(torch.zeros(3), 2.0, schedule=ve_geometric(100, 0.01, 20.0))
    out = predictor_step(ScoreSDEState(x, 60), 50, prior=ve, noise=z)
    var = float(ve.schedule.sigma[60] ** 2 - ve.schedule.sigma[50] ** 2)
    assert torch.allclose(out.x, x + var * ve.score(x, 60) + math.sqrt(var) * z, rtol=1e-12)


def test_final_projection_makes_the_samples_consistent(generator):
    prior = GaussianPrior(torch.zeros(5), 1.0, schedule=vp_linear(40, 1e-3, 0.3))
    op = MatrixOperator(torch.randn(2, 5, generator=generator, dtype=torch.float64))
    y = torch.randn(1, 2, generator=generator, dtype=torch.float64)
    post = sample_score_sde(InverseProblem(op, Gaussian(0.1), prior), y, num_samples=4, generator=generator,
                            progress=False, cutoff=0.0)
    assert torch.allclose(op(post.samples[:, 0]), y.expand(4, 2), atol=1e-10)
    assert post.nfe == 80


def test_score_sde_needs_a_linear_operator(generator):
    class Square(Operator):
        def _forward(self, x):
            return x**2

    prior = GaussianPrior(torch.zeros(2), 1.0)
    with pytest.raises(TypeError, match="LinearOperator"):
        sample_score_sde(InverseProblem(Square((2,), (2,)), Gaussian(0.1), prior),
                         torch.ones(1, 2, dtype=torch.float64), num_samples=1, generator=generator)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["vp", "ve"])
def test_without_data_consistency_the_predictor_reproduces_the_mixture_prior(schedule):
    bed = mixture_bed(1, schedule=None if schedule == "vp" else ve_geometric(1000, 0.01, 50.0))
    post = sample_score_sde(flat_problem(bed), bed.y, num_samples=1000, steps=500, dc_weight=0.0, corrector_steps=0,
                            generator=torch.Generator().manual_seed(0), progress=False)
    distance, floor, ratio = sw_ratio(post, bed.problem.prior)
    assert ratio < 1.5, (distance, floor)


@pytest.mark.parametrize("num_measurements", [1, 4])
def test_score_sde_beats_the_prior_on_the_mixture_testbed(num_measurements):
    bed = mixture_bed(num_measurements)
    post = sample_score_sde(bed.problem, bed.y, num_samples=500, steps=200,
                            generator=torch.Generator().manual_seed(0), progress=False)
    prior_draws = bed.problem.prior.sample_n(500, generator=torch.Generator().manual_seed(4))
    d_sde, floor, _ = sw_ratio(post, bed.posterior)
    d_prior, _, _ = sw_ratio(prior_draws, bed.posterior)
    assert d_sde < 0.6 * d_prior, (d_sde, d_prior, floor)


def test_truncated_pinv_is_numpys_pinv_with_rcond(generator):
    """A^+ truncated at ``cutoff`` = numpy's pinv with ``rcond = cutoff / s_max`` (dense matrix and blur)."""
    u, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(7, 4, generator=generator, dtype=torch.float64))
    singulars = torch.tensor([2.0, 0.9, 0.3, 0.01], dtype=torch.float64)
    op = MatrixOperator(u @ torch.diag(singulars) @ v.T)
    r = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    for cutoff in (0.0, 0.05, 0.5):
        dense = np.linalg.pinv(op.to_matrix().numpy(), rcond=max(cutoff / 2.0, 1e-15))
        assert np.allclose(truncated_pinv(op, r, cutoff).numpy(), r.numpy() @ dense.T, atol=1e-12)
    blur = Blur.gaussian((1, 6, 6), 1.2, 5)
    r = torch.randn(2, 1, 6, 6, generator=generator, dtype=torch.float64)
    dense = np.linalg.pinv(blur.to_matrix().numpy(), rcond=0.3 / float(blur.svd().singulars.max()), hermitian=True)
    expected = (r.reshape(2, -1).numpy() @ dense.T).reshape(2, 1, 6, 6)
    assert np.allclose(truncated_pinv(blur, r, 0.3).numpy(), expected, atol=1e-10)


def test_cutoff_leaves_the_papers_map_for_masks(generator):
    """Singular values 0 or 1: any cutoff below 1 is the paper's A^+ (the default one included)."""
    op = Inpaint((1, 5, 5), random_mask((1, 5, 5), 0.4, generator=generator))
    r = torch.randn(3, *op.out_shape, generator=generator, dtype=torch.float64)
    assert torch.allclose(truncated_pinv(op, r, 0.5), op.pinv(r), atol=1e-14)
    prior = GaussianPrior(torch.zeros(1, 5, 5, dtype=torch.float64), 1.0, schedule=vp_linear(30))
    problem = InverseProblem(op, Gaussian(0.05), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    runs = [sample_score_sde(problem, y, num_samples=2, generator=torch.Generator().manual_seed(0), progress=False,
                             **kw) for kw in ({}, {"cutoff": 0.0})]
    assert runs[0].settings["cutoff"] == pytest.approx(0.05)  # sigma_y / tau with tau = 1
    assert torch.allclose(runs[0].samples, runs[1].samples, atol=1e-12)


def test_truncation_makes_an_ill_conditioned_blur_work():
    """Gaussian prior, blur std 1.5 px, sigma_y = 0.05 (exact posterior known): the paper's exact A^+ amplifies
    the noise by 1/s ~ 4000 (mean error ~400x the data's effect); the default cutoff stays near the posterior."""
    prior = GaussianPrior(torch.full((1, 8, 8), 0.5, dtype=torch.float64), 0.3)
    problem = InverseProblem(Blur.gaussian((1, 8, 8), 1.5, 7), Gaussian(0.05), prior)
    g = torch.Generator().manual_seed(0)
    y = problem.simulate(prior.sample_n(1, generator=g), generator=g)
    exact = exact_posterior(problem, y)
    post = sample_score_sde(problem, y, num_samples=200, steps=100, generator=torch.Generator().manual_seed(1),
                            progress=False)
    mean = post.samples[:, 0].mean(0).reshape(-1)
    error = float((mean - exact.mean.reshape(-1)).norm() / (exact.mean.reshape(-1) - 0.5).norm())
    assert error < 0.9, error
    with pytest.raises(SamplerDivergence, match="left the prior's range"):  # exact A^+: the chains leave the prior
        sample_score_sde(problem, y, num_samples=200, steps=100, cutoff=0.0, generator=torch.Generator().manual_seed(1),
                         progress=False)


def test_cutoff_needs_an_svd(generator):
    class NoSVD(MatrixOperator):
        def svd(self):
            raise NotImplementedError("no SVD")

    op = NoSVD(torch.randn(2, 3, generator=generator, dtype=torch.float64))
    problem = InverseProblem(op, Gaussian(0.1), GaussianPrior(torch.zeros(3), 1.0, schedule=vp_linear(10)))
    y = torch.zeros(1, 2, dtype=torch.float64)
    post = sample_score_sde(problem, y, num_samples=1, generator=generator, progress=False)
    assert post.settings["cutoff"] == 0.0
    with pytest.raises(ValueError, match="cutoff .* SVD"):
        sample_score_sde(problem, y, num_samples=1, generator=generator, cutoff=0.1, progress=False)


def test_default_cutoff_reads_the_priors_scale(generator):
    """``min(sigma_y / tau, 0.5 s_max)``: tau is the root mean variance of an exact prior, and 0.1 of the pixel
    range of a network prior (0.1 for [0, 1], 0.2 for a diffusers-style [-1, 1])."""
    from bayesinv.samplers.score_sde import _default_cutoff

    op = MatrixOperator(torch.randn(20, 64, generator=generator, dtype=torch.float64))
    svd = op.svd_or_none()
    assert svd is not None
    s_max = float(svd.singulars.max())
    unit, signed = TinyNetworkPrior(64, generator), TinyNetworkPrior(64, generator)
    signed.pixel_range = (-1.0, 1.0)
    exact = GaussianPrior(torch.zeros(64, dtype=torch.float64), 0.25)
    assert (unit.pixel_span, signed.pixel_span, exact.pixel_span) == (1.0, 2.0, None)
    assert (unit.scale, signed.scale) == pytest.approx((0.1, 0.2))
    assert exact.scale == pytest.approx(0.5)
    for prior, tau in ((unit, 0.1), (signed, 0.2), (exact, 0.5)):
        cutoff = _default_cutoff(InverseProblem(op, Gaussian(0.02), prior), svd)
        assert cutoff == pytest.approx(min(0.02 / tau, 0.5 * s_max))
