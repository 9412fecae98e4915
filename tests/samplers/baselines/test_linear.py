"""Min-norm and Tikhonov against dense numpy solves; the discrepancy principle and GCV against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bayesinv import Gaussian, InverseProblem, ShapeError
from bayesinv.operators import MRI, cartesian_mask
from bayesinv.samplers.baselines import minnorm, tikhonov
from bayesinv.samplers.baselines.tikhonov import discrepancy_weight, gcv_weight, tikhonov_solve

from tests.samplers.baselines.helpers import matrix_problem, real_system


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("m", [6, 20])
def test_minnorm_equals_numpy_pinv(generator, complex_, m):
    problem, _, y = matrix_problem(m, (1, 3, 4), generator, complex_=complex_)
    post = minnorm(problem, y)
    expected = np.linalg.pinv(problem.operator.to_matrix().numpy()) @ y[0].numpy()
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), expected, atol=1e-10)
    assert post.point_estimate and post.samples.shape == (1, 1, 1, 3, 4) and post.extras["point_estimate"]


def test_minnorm_mri_real_images(generator):
    mask = cartesian_mask(8, 4, 0.25, generator=generator)
    problem = InverseProblem(MRI((1, 8, 8), mask), Gaussian(0.05))
    y = problem.simulate(torch.rand(1, 1, 8, 8, generator=generator, dtype=torch.float64), generator=generator)
    expected = np.linalg.lstsq(real_system(problem.operator).numpy(),
                               torch.cat([y.real, y.imag]).reshape(-1).numpy(), rcond=None)[0]
    np.testing.assert_allclose(minnorm(problem, y).mean().reshape(-1).numpy(), expected, atol=1e-10)


def _dense_tikhonov(mat: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    return np.linalg.solve(mat.conj().T @ mat + lam * np.eye(mat.shape[1]), mat.conj().T @ y)


@pytest.mark.parametrize("svd", [True, False])
@pytest.mark.parametrize("complex_", [False, True])
def test_tikhonov_given_weight_equals_dense_solve(generator, svd, complex_):
    problem, _, y = matrix_problem(10, (1, 4, 4), generator, complex_=complex_, svd=svd)
    post = tikhonov(problem, y, weight=0.3)
    expected = _dense_tikhonov(problem.operator.to_matrix().numpy(), y[0].numpy(), 0.3)
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), expected, atol=1e-8)
    assert post.extras["method"] == ("svd" if svd else "cg")


def test_tikhonov_real_restriction_of_complex_operator(generator):
    problem, _, y = matrix_problem(10, (1, 4, 4), generator, complex_=True)
    post = tikhonov(problem, y, weight=0.3, real=True)
    mat = real_system(problem.operator)  # x real: [Re M; Im M] x = [Re y; Im y]
    expected = _dense_tikhonov(mat.numpy(), torch.cat([y.real, y.imag], 1)[0].numpy(), 0.3)
    assert not post.samples.is_complex()
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), expected, atol=1e-8)


@pytest.mark.parametrize("svd", [True, False])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("tau", [1.0, 1.5])
def test_discrepancy_principle_hits_its_target(generator, svd, complex_, tau):
    sigma = 0.1
    problem, _, y = matrix_problem(30, (1, 5, 5), generator, sigma=sigma, complex_=complex_, svd=svd)
    post = tikhonov(problem, y, tau=tau)
    m_real = 30 * (2 if complex_ else 1)
    target = tau * m_real * sigma**2
    mat = problem.operator.to_matrix().numpy()
    x = _dense_tikhonov(mat, y[0].numpy(), post.extras["weight"])  # the dense solution at the reported lambda
    residual = float(np.sum(np.abs(mat @ x - y[0].numpy()) ** 2))
    assert post.extras["status"] == "ok"
    assert residual == pytest.approx(target, rel=1e-6)
    assert post.extras["residual"] == pytest.approx(target, rel=1e-6)
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), x, atol=1e-7)


def test_discrepancy_is_batched_per_item(generator):
    problem, _, _ = matrix_problem(30, (1, 5, 5), generator, sigma=0.1)
    x = torch.rand(3, 1, 5, 5, generator=generator, dtype=torch.float64) * torch.tensor([0.5, 1, 2]).reshape(3, 1, 1, 1)
    y = problem.simulate(x, generator=generator)
    choice = discrepancy_weight(problem.operator, y, 0.1)
    for i in range(3):  # each item's lambda equals the one found for it alone
        alone = discrepancy_weight(problem.operator, y[i: i + 1], 0.1)
        assert float(choice.weight[i]) == pytest.approx(float(alone.weight[0]), rel=1e-6)


def test_discrepancy_edge_cases(generator):
    problem, _, y = matrix_problem(30, (1, 5, 5), generator, sigma=0.1)
    small = discrepancy_weight(problem.operator, 1e-3 * y, 0.1)  # ||y||^2 below the noise: x = 0
    assert small.status == ["data_below_noise"] and math.isinf(float(small.weight[0]))
    assert float(tikhonov_solve(problem.operator, 1e-3 * y, small.weight).abs().max()) == 0
    overdet, _, y2 = matrix_problem(40, (1, 2, 2), generator, sigma=0.1)  # 40 equations, 4 unknowns
    floor = discrepancy_weight(overdet.operator, y2, 0.1, tau=0.01)  # target below the LS residual
    assert floor.status == ["floor_above_target"]


def test_gcv_minimises_its_criterion(generator):
    problem, _, y = matrix_problem(40, (1, 4, 4), generator, sigma=0.2)
    choice = gcv_weight(problem.operator, y)
    mat, yv = problem.operator.to_matrix().numpy(), y[0].numpy()

    def gcv(lam):
        influence = mat @ np.linalg.solve(mat.T @ mat + lam * np.eye(16), mat.T)
        return np.sum((influence @ yv - yv) ** 2) / (40 - np.trace(influence)) ** 2

    best = float(choice.weight[0])
    grid = np.geomspace(best / 100, best * 100, 801)
    assert gcv(best) <= min(gcv(lam) for lam in grid) * (1 + 1e-9)
    post = tikhonov(problem, y, rule="gcv")
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), _dense_tikhonov(mat, yv, best), atol=1e-8)


def test_gcv_needs_svd(generator):
    problem, _, y = matrix_problem(10, (1, 2, 2), generator, svd=False)
    with pytest.raises(ValueError, match="GCV needs the operator's SVD"):
        tikhonov(problem, y, rule="gcv")


def test_bad_arguments(generator):
    problem, _, y = matrix_problem(10, (1, 2, 2), generator)
    with pytest.raises(ValueError, match="rule must be"):
        tikhonov(problem, y, rule="lcurve")
    with pytest.raises(ValueError, match="weight must be"):
        tikhonov(problem, y, weight=-1.0)
    with pytest.raises(ShapeError, match="y must have shape"):
        minnorm(problem, torch.zeros(1, 11, dtype=torch.float64))
    with pytest.raises(TypeError, match="problem must be"):
        minnorm("problem", y)
