"""Exact split Gibbs: its exact likelihood step against dense linear algebra, the sampler against closed forms."""

import math

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import MRI, Blur, Inpaint, MatrixOperator, cartesian_mask
from bayesinv.operators.inpaint import random_mask
from bayesinv.priors import StationaryGaussianPrior, exact_posterior, vp_linear
from bayesinv.samplers import SAMPLERS, sample_split_gibbs
from bayesinv.operators.base import operator_norm_squared
from bayesinv.samplers.split_gibbs import _chebyshev_sqrt, likelihood_root, likelihood_root_method


def random_operator(seed=0):
    g = torch.Generator().manual_seed(seed)
    return MatrixOperator(torch.randn(4, 6, generator=g, dtype=torch.float64))


def test_registered():
    assert SAMPLERS["split_gibbs"] is sample_split_gibbs


def test_operator_norm_is_largest_singular_value_squared():
    op = random_operator()
    matrix = op.to_matrix(torch.float64)
    expected = float(torch.linalg.svdvals(matrix)[0]) ** 2
    got = operator_norm_squared(op, torch.zeros(1, 6, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    assert math.isclose(got, expected, rel_tol=1e-8)


def test_chebyshev_square_root_equals_dense():
    op = random_operator(2)
    matrix = op.to_matrix(torch.float64)
    top = 1.01 * float(torch.linalg.svdvals(matrix)[0]) ** 2
    c = 0.81 / top
    lam, vecs = torch.linalg.eigh(torch.eye(6, dtype=torch.float64) - c * matrix.T @ matrix)
    dense = (vecs * lam.sqrt()) @ vecs.T
    v = torch.randn(3, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = _chebyshev_sqrt(op.normal, v, c, top, 40)
    torch.testing.assert_close(got, v @ dense.T, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["blur", "inpaint", "mri", "matrix"])
def test_likelihood_root_equals_dense_and_says_how(name):
    g = torch.Generator().manual_seed(5)
    makers = {"blur": lambda: Blur.gaussian((1, 8, 7), 1.2),
              "inpaint": lambda: Inpaint((1, 8, 7), random_mask((8, 7), 0.5, g)),
              "mri": lambda: MRI((1, 8, 8), cartesian_mask(8, 2, 0.25, generator=g)),
              "matrix": lambda: MatrixOperator(torch.randn(20, 56, generator=g, dtype=torch.float64),
                                               in_shape=(1, 8, 7))}
    op = makers[name]()
    matrix = op.to_matrix(torch.float64)
    matrix = torch.cat([matrix.real, matrix.imag]) if matrix.is_complex() else matrix
    gram = matrix.T @ matrix
    top = 1.01 * float(torch.linalg.eigvalsh(gram)[-1])
    c = 0.81 / top
    lam, vecs = torch.linalg.eigh(torch.eye(op.in_dim, dtype=torch.float64) - c * gram)
    v = torch.randn(3, *op.in_shape, generator=g, dtype=torch.float64)
    expected = (v.reshape(3, -1) @ ((vecs * lam.clamp_min(0).sqrt()) @ vecs.T)).reshape(v.shape)
    # the exact root where A^T A is diagonal; the Chebyshev polynomial (degree 40: error ~1e-10) elsewhere
    torch.testing.assert_close(likelihood_root(op, v, c, top, 40), expected, rtol=0, atol=1e-9)
    method = likelihood_root_method(op, 40)
    assert method == ("chebyshev (degree 40)" if name == "matrix" else
                      f"exact ({'pixel' if name == 'inpaint' else 'fourier'})")


def test_samples_match_closed_form_gaussian_posterior():
    prior = StationaryGaussianPrior.squared_exponential((1, 4, 4), length_scale=1.5, variance=0.1,
                                                        schedule=vp_linear(1000))
    op = Inpaint((1, 4, 4), random_mask((4, 4), 0.5, torch.Generator().manual_seed(0)))
    problem = InverseProblem(op, Gaussian(0.2), prior)
    g = torch.Generator().manual_seed(4)
    y = problem.simulate(prior.sample_n(1, generator=g), generator=g)
    exact = exact_posterior(problem, y)
    n = 400
    post = sample_split_gibbs(problem, y, num_samples=n, steps=30, anneal_steps=10, generator=g)
    draws = post.samples[:, 0].reshape(n, -1)
    mean, std = exact.mean.reshape(-1), exact.std.reshape(-1)
    # the mean within Monte Carlo error (5 standard errors); the spread within 6% (the DDPM prior step is not exact)
    assert bool(((draws.mean(0) - mean).abs() <= 5 * std / math.sqrt(n)).all())
    ratio = draws.std(0) / std
    assert 0.94 <= float(ratio.mean()) <= 1.06, ratio
    assert post.nfe > 0 and post.samples.shape == (n, 1, 1, 4, 4)


def test_bad_inputs():
    prior = StationaryGaussianPrior.squared_exponential((1, 4, 4), length_scale=1.5)
    problem = InverseProblem(Inpaint((1, 4, 4), torch.ones(4, 4, dtype=torch.bool)), Gaussian(0.1), prior)
    y = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="burn_in"):
        sample_split_gibbs(problem, y, num_samples=2, steps=5, num_draws=3, thin=3, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        sample_split_gibbs(problem, y, num_samples=2, steps=5, generator=0)
    with pytest.raises(ValueError, match="finer schedule"):
        tiny = InverseProblem(problem.operator, Gaussian(1e-4), prior)
        sample_split_gibbs(tiny, y, num_samples=2, steps=5, generator=torch.Generator())
