"""InverseProblem: the traced Pyro log-likelihood equals closed forms; simulation; errors."""

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.stats
import torch
from pyro import poutine

from bayesinv import InverseProblem
from bayesinv.errors import DTypeError, NonFiniteError, ShapeError
from bayesinv.noise import Gaussian
from bayesinv.operators.denoise import Identity
from bayesinv.operators.matrix import MatrixOperator


def _matrix_problem(generator, sigma=0.2):
    matrix = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    return InverseProblem(MatrixOperator(matrix), Gaussian(sigma)), matrix


def test_traced_log_likelihood_equals_closed_form_gaussian(generator):
    problem, matrix = _matrix_problem(generator)
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(3, generator=generator, dtype=torch.float64)
    got = problem.log_likelihood(x, y)
    cov = 0.2**2 * np.eye(3)
    want = [scipy.stats.multivariate_normal(matrix.numpy() @ xi, cov).logpdf(y.numpy()) for xi in x.numpy()]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_gradient_equals_closed_form(generator):
    problem, matrix = _matrix_problem(generator)
    x = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    _, grad = problem.grad_log_likelihood(x, y)
    want = (y - x @ matrix.T) @ matrix / 0.2**2
    torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)


def test_nuisance_latent_operator_and_noise_latent(generator):
    # operator scaled by an unknown gain, noise sigma unknown: both traced through the model
    problem = InverseProblem(lambda gain: _Scale(gain), Gaussian(dist.LogNormal(0.0, 1.0)),
                             nuisance={"gain": dist.LogNormal(0.0, 0.1)})
    assert problem.latent_names == ["sigma", "gain"]
    x = torch.ones(2, 3, dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.float64)
    gain = torch.tensor([1.0, 2.0], dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.5], dtype=torch.float64)
    got = problem.log_likelihood(x, y, gain=gain, sigma=sigma)
    want = [scipy.stats.norm(g, s).logpdf(np.zeros(3)).sum() for g, s in zip([1.0, 2.0], [1.0, 0.5])]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="latent"):
        problem.log_likelihood(x, y, gain=gain)


class _Scale(MatrixOperator):
    def __init__(self, gain):
        super().__init__(torch.eye(3, dtype=torch.float64))
        self.gain = gain

    def _forward(self, x):
        gain = self.gain.reshape(-1, 1) if torch.is_tensor(self.gain) and self.gain.ndim else self.gain
        return gain * x

    def _adjoint(self, y):  # A = gain I per chain is self-adjoint
        return self._forward(y)


def test_model_runs_as_generative_pyro_model():
    prior = dist.Normal(torch.zeros(4, dtype=torch.float64), 1.0).to_event(1)
    problem = InverseProblem(Identity((4,)), Gaussian(0.1), prior)
    trace = poutine.trace(problem.model).get_trace(None, num_samples=3)
    assert trace.nodes["x"]["value"].shape == (3, 4)
    assert trace.nodes["y"]["value"].shape == (3, 4)
    assert trace.nodes["y"]["is_observed"] is False


def test_simulate_is_reproducible_with_a_generator():
    problem = InverseProblem(Identity((1, 4, 4)), Gaussian(0.1))
    x = torch.zeros(2, 1, 4, 4)
    a = problem.simulate(x, generator=torch.Generator().manual_seed(3))
    b = problem.simulate(x, generator=torch.Generator().manual_seed(3))
    c = problem.simulate(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.std()) - 0.1) < 0.05


def test_measurement_errors():
    problem = InverseProblem(Identity((1, 4, 4)), Gaussian(0.1))
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ShapeError, match=r"y must have shape \(1, 4, 4\)"):
        problem.log_likelihood(x, torch.zeros(1, 1, 4, 5))
    with pytest.raises(DTypeError, match="complex"):
        problem.log_likelihood(x, torch.zeros(1, 1, 4, 4, dtype=torch.complex64))
    with pytest.raises(NonFiniteError, match="y contains 1 non-finite"):
        y = torch.zeros(1, 1, 4, 4)
        y[0, 0, 0, 0] = float("nan")
        problem.log_likelihood(x, y)
    with pytest.raises(ShapeError, match="batch size 3"):
        problem.log_likelihood(x, torch.zeros(3, 1, 4, 4))
    with pytest.raises(ShapeError, match=r"x must have shape \(B, 1, 4, 4\)"):
        problem.log_likelihood(torch.zeros(2, 4, 4), torch.zeros(1, 4, 4))


def test_prior_shape_must_match_operator():
    prior = dist.Normal(torch.zeros(5), 1.0).to_event(1)
    with pytest.raises(ShapeError, match=r"event shape \(5,\) does not match the operator's in_shape \(4,\)"):
        InverseProblem(Identity((4,)), Gaussian(0.1), prior)


def test_constructor_type_errors():
    with pytest.raises(TypeError, match="NoiseModel"):
        InverseProblem(Identity((4,)), 0.1)
    with pytest.raises(TypeError, match="operator must be an Operator"):
        InverseProblem(lambda: None, Gaussian(0.1))


# -- one likelihood, two paths: the closed form (Gaussian noise, linear operator) equals the traced model ----------
def _path_cases(generator):
    from bayesinv.operators.blur import Blur
    from tests.samplers.helpers import DFTOperator

    blur = InverseProblem(Blur.gaussian((1, 6, 6), 1.2, 5), Gaussian(0.1))
    x_blur = torch.randn(3, 1, 6, 6, generator=generator, dtype=torch.float64)
    dft = InverseProblem(DFTOperator(6, [0, 1, 4]), Gaussian(0.2))  # complex measurements of real images
    x_dft = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    latent = InverseProblem(lambda gain: _Scale(gain), Gaussian(dist.LogNormal(0.0, 1.0)),
                            nuisance={"gain": dist.LogNormal(0.0, 0.1)})
    x_latent = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    lat = {"gain": torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
           "sigma": torch.tensor([0.3, 1.0, 0.7], dtype=torch.float64)}
    cases = []
    for problem, x, latents in ((blur, x_blur, {}), (dft, x_dft, {}), (latent, x_latent, lat)):
        y = problem.simulate(x[:1], generator=generator, **{k: v[:1] for k, v in latents.items()})
        cases.append((problem, x, y, latents))
    return cases


def test_closed_form_and_traced_likelihoods_agree_in_value_and_gradient(generator):
    for problem, x, y, latents in _path_cases(generator):
        assert problem.closed_form_likelihood
        ll_c, grad_c = problem.grad_log_likelihood(x, y, method="closed_form", **latents)
        ll_t, grad_t = problem.grad_log_likelihood(x, y, method="traced", **latents)
        ll_a, grad_a = problem.grad_log_likelihood(x, y, **latents)
        torch.testing.assert_close(ll_c, ll_t, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(grad_c, grad_t, rtol=1e-10, atol=1e-10)
        assert torch.equal(ll_a, ll_c) and torch.equal(grad_a, grad_c)


def test_auto_takes_the_closed_form_without_tracing(generator):
    problem, x, y, _ = _path_cases(generator)[0]

    def no_trace(*args, **kwargs):
        raise AssertionError("the Pyro model was traced")

    problem._likelihood_model = no_trace
    assert problem.log_likelihood(x, y).shape == (3,)
    with pytest.raises(AssertionError, match="traced"):
        problem.log_likelihood(x, y, method="traced")


def test_non_gaussian_noise_is_traced_and_refuses_the_closed_form(generator):
    from bayesinv.noise import Poisson

    problem = InverseProblem(MatrixOperator(torch.rand(3, 5, generator=generator, dtype=torch.float64)), Poisson(20.0))
    assert not problem.closed_form_likelihood
    x = torch.rand(2, 5, generator=generator, dtype=torch.float64) + 0.5
    y = problem.simulate(x[:1], generator=generator)
    assert torch.equal(problem.log_likelihood(x, y), problem.log_likelihood(x, y, method="traced"))
    with pytest.raises(ValueError, match="closed-form likelihood needs Gaussian noise"):
        problem.log_likelihood(x, y, method="closed_form")
    with pytest.raises(ValueError, match="method must be one of"):
        problem.log_likelihood(x, y, method="exact")


def test_inflated_likelihood_is_the_dense_gaussian(generator):
    """log N(y; A x, sigma^2 I + r^2 A A^T) by the SVD equals scipy's dense density; isotropic: (sigma^2 + r^2) I."""
    problem, matrix = _matrix_problem(generator, sigma=0.3)
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    a = matrix.numpy()
    for covariance, cov in (("operator", 0.09 * np.eye(3) + 0.5 * a @ a.T), ("isotropic", 0.59 * np.eye(3))):
        got = problem.inflated_log_likelihood(x, y, 0.5, covariance=covariance)
        want = [scipy.stats.multivariate_normal(a @ xi, cov).logpdf(y[0].numpy()) for xi in x.numpy()]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    np.testing.assert_allclose(problem.inflated_log_likelihood(x, y, 0.0).numpy(),
                               problem.log_likelihood(x, y, method="traced").numpy(), rtol=1e-12)
