"""Haar transform orthonormality (exact), wavelet-l1 against its closed form for A = I and its optimality
conditions for a general A, and MFISTA's monotone objective."""

from __future__ import annotations

import pytest
import torch

from bayesinv import Gaussian, InverseProblem, ShapeError
from bayesinv.operators import Identity
from bayesinv.samplers.baselines import wavelet_l1
from bayesinv.samplers.baselines.wavelet import detail_mask, fit_wavelet_rate, haar_forward, haar_inverse, wavelet_fista

from tests.samplers.baselines.helpers import matrix_problem


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_haar_is_orthonormal_exactly(levels):
    n = 8
    eye = torch.eye(n * n, dtype=torch.float64).reshape(n * n, n, n)
    W = haar_forward(eye, levels).reshape(n * n, n * n).T  # column k = W e_k
    torch.testing.assert_close(W.T @ W, torch.eye(n * n, dtype=torch.float64), atol=1e-14, rtol=0)
    torch.testing.assert_close(W @ W.T, torch.eye(n * n, dtype=torch.float64), atol=1e-14, rtol=0)
    Winv = haar_inverse(eye, levels).reshape(n * n, n * n).T
    torch.testing.assert_close(Winv, W.T, atol=1e-14, rtol=0)  # the inverse is the adjoint


def test_haar_one_level_closed_form():
    x = torch.tensor([[1.0, 2.0, 5.0, 5.0], [3.0, 4.0, 5.0, 5.0]], dtype=torch.float64)
    c = haar_forward(x[None], levels=1)[0]
    # blocks [[1,2],[3,4]] and [[5,5],[5,5]]: approx (a+b+c+d)/2, horizontal (a-b+c-d)/2, vertical (a+b-c-d)/2
    expected = torch.tensor([[5.0, 10.0, -1.0, 0.0], [-2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(c, expected, atol=1e-14, rtol=0)


def test_haar_rejects_bad_sizes():
    with pytest.raises(ShapeError, match="divisible by 8"):
        haar_forward(torch.zeros(1, 12, 12), levels=3)


def test_denoising_equals_soft_thresholding(generator):
    """For A = I the minimiser is W^T soft(W y, lambda) on the details: FISTA must reach it."""
    problem = InverseProblem(Identity((1, 8, 8)), Gaussian(0.1))
    y = problem.simulate(torch.rand(1, 1, 8, 8, generator=generator, dtype=torch.float64), generator=generator)
    lam = 0.15
    post = wavelet_l1(problem, y, weight=lam, levels=2, tol=1e-12, max_iter=50)
    c = haar_forward(y, 2)
    mask = detail_mask(y.shape, 2)
    soft = torch.where(mask, torch.sign(c) * (c.abs() - lam).clamp_min(0), c)
    torch.testing.assert_close(post.mean()[None], haar_inverse(soft, 2), atol=1e-12, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("complex_", [False, True])
def test_optimality_conditions_general_operator(generator, complex_):
    problem, _, y = matrix_problem(100, (1, 8, 8), generator, sigma=0.05, complex_=complex_)  # A^H A invertible
    lam = 0.02
    res = wavelet_fista(problem.operator, y, lam, levels=2, max_iter=5000, tol=1e-10, monotone=True)
    op = problem.operator
    g = haar_forward(op.adjoint(op(res.x) - y), 2)[0, 0]  # gradient of the data term in wavelet coordinates
    c = haar_forward(res.x, 2)[0, 0]
    mask = detail_mask(res.x.shape, 2)
    active = mask & (c.abs() > 1e-8)
    tol = 1e-5
    assert float(g[~mask].abs().max()) < tol  # unpenalised coefficients: zero gradient
    phase = c[active] / c[active].abs()
    assert float((g[active] + lam * phase).abs().max()) < tol  # g = -lambda sign(c) on the support
    assert float(g[mask & ~active].abs().max()) <= lam + tol  # |g| <= lambda off the support


@pytest.mark.slow
def test_monotone_variant_never_increases_objective(generator):
    problem, _, y = matrix_problem(100, (1, 8, 8), generator, sigma=0.05)
    mono = wavelet_fista(problem.operator, y, 0.01, levels=2, max_iter=400, tol=0.0, monotone=True)
    plain = wavelet_fista(problem.operator, y, 0.01, levels=2, max_iter=400, tol=0.0, monotone=False)
    diffs = mono.objective[1:, 0] - mono.objective[:-1, 0]
    assert float(diffs.max()) <= 0.0
    assert bool((torch.diff(plain.objective[:, 0]) > 0).any())  # plain FISTA is not monotone here
    assert float(mono.objective[-1, 0]) == pytest.approx(float(plain.objective[-1, 0]), rel=1e-6)


def test_default_weights(generator):
    problem, _, y = matrix_problem(30, (1, 8, 8), generator, sigma=0.05)
    post = wavelet_l1(problem, y, max_iter=20, rule="universal")
    assert post.extras["weight"] == pytest.approx(0.05 * (2 * torch.log(torch.tensor(64.0))).sqrt().item())
    assert post.point_estimate and post.extras["iterations"] == 20
    assert wavelet_l1(problem, y, max_iter=2, rate=10.0).extras["weight"] == pytest.approx(0.05**2 * 10.0)


def test_fitted_rate_of_a_laplace_sample(generator):
    """Images whose detail coefficients are i.i.d. Laplace(rate 4): the fitted ML rate is close to 4."""
    u = torch.rand(400, 1, 8, 8, generator=generator, dtype=torch.float64) - 0.5
    coef = -0.25 * torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1/4) by the inverse CDF
    images = haar_inverse(coef, 2)
    assert fit_wavelet_rate(images, 2) == pytest.approx(4.0, rel=0.03)
