"""TV: optimality certified by the primal–dual gap, FISTA and Chambolle–Pock agree, the gap formula
checked against a dense numpy evaluation, and local optimality under random perturbations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesinv import SamplerDivergence
from bayesinv.operators.base import LinearOperator
from bayesinv.samplers.baselines import tv
from bayesinv.samplers.baselines.tv import (divergence, gradient, total_variation, tv_chambolle_pock, tv_fista,
                                            tv_gap)

from tests.samplers.baselines.helpers import matrix_problem

WEIGHT = 0.05


def _problem(generator, complex_=False, svd=True):
    problem, x, y = matrix_problem(40, (1, 6, 6), generator, sigma=0.05, complex_=complex_, svd=svd)
    return problem, y


def test_divergence_is_minus_adjoint_of_gradient(generator):
    x = torch.randn(2, 2, 5, 7, generator=generator, dtype=torch.float64)
    p = torch.randn(2, 2, 2, 5, 7, generator=generator, dtype=torch.float64)
    assert float((gradient(x) * p).sum()) == pytest.approx(-float((x * divergence(p)).sum()), rel=1e-12)
    img = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    img[..., 1:3, 1:3] = 1  # a unit square of side 2: perimeter 8 in the l1 sense, isotropic corners count sqrt(2)
    expected = 4 * 1 + 2 * 1 + 2 * 1 + np.sqrt(2) * 0 + 0  # computed below explicitly
    dense = np.zeros((4, 4))
    arr = img[0, 0].numpy()
    for i in range(4):
        for j in range(4):
            dv = arr[i + 1, j] - arr[i, j] if i < 3 else 0.0
            dh = arr[i, j + 1] - arr[i, j] if j < 3 else 0.0
            dense[i, j] = np.hypot(dv, dh)
    assert float(total_variation(img)[0]) == pytest.approx(dense.sum(), rel=1e-12)
    assert expected > 0


@pytest.mark.parametrize("solver", [tv_fista, tv_chambolle_pock])
def test_solvers_reach_certified_optimum(generator, solver):
    problem, y = _problem(generator)
    opts = {"inner_iterations": 10} if solver is tv_fista else {}
    res = solver(problem.operator, y, WEIGHT, max_iter=5000, tol=1e-7, gap_tol=1e-5, **opts)
    assert res.converged and float(res.relative_gap[0]) < 1e-5
    # P(x) - P* <= gap: random perturbations cannot lower the objective by more than the gap
    op = problem.operator
    base = float(res.objective[0])
    bumps = 1e-3 * torch.randn(64, 1, 6, 6, generator=generator, dtype=torch.float64)
    pert = res.x + bumps
    values = 0.5 * ((op(pert) - y) ** 2).sum(1) + WEIGHT * total_variation(pert)
    assert float(values.min()) >= base - float(res.relative_gap[0]) * base - 1e-12


@pytest.mark.slow
def test_fista_and_chambolle_pock_agree(generator):
    problem, y = _problem(generator)
    a = tv_fista(problem.operator, y, WEIGHT, max_iter=5000, tol=1e-8, gap_tol=1e-7, inner_iterations=10)
    b = tv_chambolle_pock(problem.operator, y, WEIGHT, max_iter=20000, tol=1e-8, gap_tol=1e-7)
    # strong convexity is absent in general, but the objective values must agree to the certified gap
    assert float(a.objective[0]) == pytest.approx(float(b.objective[0]), rel=2e-7)
    assert float((a.x - b.x).abs().max()) < 1e-3


def test_gap_matches_dense_numpy(generator):
    problem, y = _problem(generator)
    x = torch.rand(1, 1, 6, 6, generator=generator, dtype=torch.float64)
    p = 0.3 * torch.randn(1, 2, 1, 6, 6, generator=generator, dtype=torch.float64)
    rel, primal = tv_gap(problem.operator, y, x, p, WEIGHT)
    mat, xv, yv = problem.operator.to_matrix().numpy(), x.reshape(-1).numpy(), y[0].numpy()
    n = 6
    dv = np.zeros((n * n, n * n))
    dh = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            k = i * n + j
            if i < n - 1:
                dv[k, k], dv[k, k + n] = -1, 1
            if j < n - 1:
                dh[k, k], dh[k, k + 1] = -1, 1
    pv, ph = p[0, 0, 0].reshape(-1).numpy(), p[0, 1, 0].reshape(-1).numpy()
    scale = np.maximum(np.hypot(pv, ph) / WEIGHT, 1)
    pv, ph = pv / scale, ph / scale
    q = mat @ xv - yv
    tv_value = np.hypot(dv @ xv, dh @ xv).sum()
    p_val = 0.5 * q @ q + WEIGHT * tv_value
    r = mat.T @ q + dv.T @ pv + dh.T @ ph
    gap = q @ (mat @ xv) + WEIGHT * tv_value + np.abs(xv).max() * np.abs(r).sum()
    assert float(primal[0]) == pytest.approx(p_val, rel=1e-12)
    assert float(rel[0]) == pytest.approx(gap / p_val, rel=1e-10)


def test_complex_operator_chambolle_pock(generator):
    problem, y = _problem(generator, complex_=True)
    post = tv(problem, y, weight=WEIGHT, algorithm="chambolle_pock", tol=1e-7, gap_tol=1e-5, max_iter=20000)
    assert post.extras["converged"] and post.extras["relative_gap"] < 1e-5
    assert post.samples.is_complex() and post.point_estimate


def test_tv_baseline_default_weight_and_metadata(generator):
    problem, y = _problem(generator, svd=False)
    post = tv(problem, y, inner_iterations=10, tol=1e-6, gap_tol=1e-4, max_iter=3000)
    assert post.extras["weight"] == pytest.approx(0.05**2 * post.settings["rate"])
    assert post.extras["relative_gap"] < 1e-4 and post.extras["converged"]
    assert post.samples.shape == (1, 1, 1, 6, 6) and post.wall_time > 0


@pytest.mark.integrations
def test_cvxpy_reference(generator):
    cp = pytest.importorskip("cvxpy")
    problem, y = _problem(generator)
    res = tv_chambolle_pock(problem.operator, y, WEIGHT, max_iter=20000, tol=1e-8, gap_tol=1e-7)
    mat, yv = problem.operator.to_matrix().numpy(), y[0].numpy()
    x = cp.Variable((6, 6))
    dv, dh = x[1:, :] - x[:-1, :], x[:, 1:] - x[:, :-1]
    tv_expr = cp.sum(cp.norm(cp.vstack([cp.vec(dv[:, :-1], order="C"), cp.vec(dh[:-1, :], order="C")]), 2, axis=0)) \
        + cp.sum(cp.abs(dv[:, -1])) + cp.sum(cp.abs(dh[-1, :]))
    objective = 0.5 * cp.sum_squares(mat @ cp.vec(x, order="C") - yv) + WEIGHT * tv_expr
    cp.Problem(cp.Minimize(objective)).solve()
    np.testing.assert_allclose(res.x[0, 0].numpy(), x.value, atol=1e-4)


class _NaNAfter(LinearOperator):
    """An identity whose adjoint returns NaN from its ``k``-th call on (a divergence trigger)."""

    def __init__(self, k):
        super().__init__((1, 4, 4), (1, 4, 4))
        self.calls, self.k = 0, k

    def _forward(self, x):
        return x.clone()

    def _adjoint(self, y):
        self.calls += 1
        return y * float("nan") if self.calls >= self.k else y.clone()


@pytest.mark.parametrize("solver", [tv_fista, tv_chambolle_pock])
def test_divergence_names_the_iteration(solver):
    op = _NaNAfter(k=55)  # 50 power iterations for ||A||, then a few good iterations
    y = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    with pytest.raises(SamplerDivergence, match=r"tv diverged at step (\d+)") as info:
        solver(op, y, 0.1, max_iter=100)
    assert info.value.step >= 1
