"""PnP-ADMM with the exact Gaussian MMSE denoiser converges to the exact posterior mean (its fixed point)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import MRI, cartesian_mask
from bayesinv.priors import GaussianPrior
from bayesinv.samplers.baselines import pnp_admm

from tests.samplers.baselines.helpers import matrix_problem, real_system


def _posterior_mean(mat: np.ndarray, y: np.ndarray, sigma: float, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    precision = mat.conj().T @ mat / sigma**2 + np.linalg.inv(cov)
    return np.linalg.solve(precision, mat.conj().T @ y / sigma**2 + np.linalg.solve(cov, mean)).real


def _prior(generator, n, shape):
    root = torch.randn(n, n, generator=generator, dtype=torch.float64) / n**0.5
    cov = 0.05 * root @ root.T + 0.02 * torch.eye(n, dtype=torch.float64)
    mean = 0.5 * torch.ones(n, dtype=torch.float64)
    return GaussianPrior(mean, cov, event_shape=shape), mean.numpy(), cov.numpy()


@pytest.mark.parametrize("svd", [True, False])
@pytest.mark.parametrize("noise_level", [0.05, 0.3])
def test_fixed_point_is_exact_posterior_mean(generator, svd, noise_level):
    prior, mean, cov = _prior(generator, 16, (1, 4, 4))
    problem, _, y = matrix_problem(10, (1, 4, 4), generator, sigma=0.1, svd=svd, prior=prior)
    post = pnp_admm(problem, y, noise_level=noise_level, max_iter=3000, tol=1e-10)
    expected = _posterior_mean(problem.operator.to_matrix().numpy(), y[0].numpy(), 0.1, mean, cov)
    assert post.extras["converged"]
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), expected, atol=1e-6)
    assert post.nfe == post.extras["iterations"]


def test_real_input_complex_output_operator(generator):
    """MRI on real images (A^T = Re A^H): the x-step runs by CG; the fixed point is still the posterior mean."""
    prior, mean, cov = _prior(generator, 16, (1, 4, 4))
    mask = cartesian_mask(4, 2, 0.5, generator=generator)
    problem = InverseProblem(MRI((1, 4, 4), mask), Gaussian(0.1), prior)
    y = problem.simulate(torch.rand(1, 1, 4, 4, generator=generator, dtype=torch.float64), generator=generator)
    post = pnp_admm(problem, y, noise_level=0.2, max_iter=3000, tol=1e-10)
    expected = _posterior_mean(real_system(problem.operator).numpy(), torch.cat([y.real, y.imag]).reshape(-1).numpy(),
                               0.1, mean, cov)
    np.testing.assert_allclose(post.mean().reshape(-1).numpy(), expected, atol=1e-6)


def test_noise_level_snaps_to_schedule(generator):
    prior, _, _ = _prior(generator, 16, (1, 4, 4))
    problem, _, y = matrix_problem(10, (1, 4, 4), generator, prior=prior)
    post = pnp_admm(problem, y, noise_level=0.1, max_iter=5)
    t = post.extras["timestep"]
    assert post.extras["noise_level"] == pytest.approx(float(prior.schedule.noise_level(t)))
    assert abs(post.extras["noise_level"] - 0.1) < 0.01


def test_errors(generator):
    problem, _, y = matrix_problem(10, (1, 4, 4), generator)
    with pytest.raises(TypeError, match="problem.prior must be a ScorePrior"):
        pnp_admm(problem, y)
    prior, _, _ = _prior(generator, 16, (1, 4, 4))
    problem, _, y = matrix_problem(10, (1, 4, 4), generator, prior=prior)
    with pytest.raises(ValueError, match="noise_level must be"):
        pnp_admm(problem, y, noise_level=-1.0)
    with pytest.raises(ValueError, match="max_iter must be"):
        pnp_admm(problem, y, max_iter=0)
