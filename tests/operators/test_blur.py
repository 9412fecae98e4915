"""Blur against scipy.ndimage.convolve(mode="wrap"), kernels against closed forms, blind-deblurring gradients."""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.ndimage
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.priors import GaussianPrior, exact_posterior
from bayesinv.samplers.ddrm import sample_ddrm
from bayesinv.operators.blur import Blur, default_gaussian_size, gaussian_kernel, motion_kernel, uniform_kernel


@pytest.mark.parametrize("kernel_shape", [(3, 3), (5, 3), (2, 4), (4, 4)])
def test_blur_equals_scipy_wrap_convolution(kernel_shape, generator):
    kernel = torch.rand(*kernel_shape, generator=generator, dtype=torch.float64)
    x = torch.randn(2, 3, 9, 8, generator=generator, dtype=torch.float64)
    got = Blur((3, 9, 8), kernel)(x)
    want = np.stack([[scipy.ndimage.convolve(x[b, c].numpy(), kernel.numpy(), mode="wrap") for c in range(3)]
                     for b in range(2)])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_complex_blur_blurs_real_and_imaginary_parts_separately(generator):
    kernel = gaussian_kernel(5, 1.2)
    re, im = (torch.randn(1, 1, 8, 8, generator=generator, dtype=torch.float64) for _ in range(2))
    real_op = Blur((1, 8, 8), kernel)
    got = Blur((1, 8, 8), kernel, input_complex=True)(torch.complex(re, im))
    torch.testing.assert_close(got, torch.complex(real_op(re), real_op(im)), rtol=1e-12, atol=1e-12)


def test_gaussian_kernel_closed_form():
    k = gaussian_kernel(5, 1.3)
    r = np.arange(5) - 2.0
    want = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.3**2))
    np.testing.assert_allclose(k.numpy(), want / want.sum(), rtol=1e-14)


def test_gaussian_std_zero_is_the_identity_exactly_and_continuous(generator):
    x = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    assert torch.equal(Blur.gaussian((1, 8, 8), 0.0, size=7)(x), x)
    assert torch.equal(Blur.gaussian((1, 8, 8), torch.tensor(0.0))(x), x)
    # the kernel tends to the Dirac as std -> 0 (centre weight 1 - O(exp(-1 / (2 std^2))))
    for std in (0.3, 0.2, 0.1):
        centre = float(gaussian_kernel(7, std)[3, 3])
        assert abs(1 - centre) <= 4.5 * np.exp(-1 / (2 * std**2))
    assert default_gaussian_size(0.0) == 1 and default_gaussian_size(1.5) == 13 and default_gaussian_size(3.0, 16) == 15


def test_batched_widths_blur_each_image_with_its_own_kernel(generator):
    stds = torch.tensor([0.0, 0.7, 1.5], dtype=torch.float64)
    x = torch.randn(3, 2, 8, 8, generator=generator, dtype=torch.float64)
    got = Blur.gaussian((2, 8, 8), stds, size=7)(x)
    for i in range(3):
        torch.testing.assert_close(got[i : i + 1], Blur.gaussian((2, 8, 8), float(stds[i]), size=7)(x[i : i + 1]))
    assert not Blur.gaussian((2, 8, 8), stds, size=7).has_svd


def test_uniform_and_motion_kernels():
    np.testing.assert_allclose(uniform_kernel(4).numpy(), np.full((4, 4), 1 / 16))
    horizontal = motion_kernel(5, 0.0, 4.0)  # 81 points from column 0 to 4 on the middle row, splatted bilinearly
    assert torch.equal(horizontal[[0, 1, 3, 4]], torch.zeros(4, 5, dtype=torch.float64))
    # each inner pixel collects the hat function over 20 + 19 points (sum 20), each end 10.5: trapezoid weights
    np.testing.assert_allclose(horizontal[2].numpy(), np.array([10.5, 20, 20, 20, 10.5]) / 81, rtol=1e-12)
    # symmetric segment: the kernel is centro-symmetric and its angle-90 version is the transpose
    torch.testing.assert_close(horizontal, horizontal.flip(0, 1))
    torch.testing.assert_close(motion_kernel(5, 90.0, 4.0), horizontal.T, atol=1e-12, rtol=0)
    assert torch.equal(motion_kernel(5, 33.0, 0.0), gaussian_kernel(5, 0.0))


def test_blind_deblurring_gradient_in_the_width_matches_finite_differences(generator):
    shape = (1, 8, 8)
    problem = InverseProblem(lambda width: Blur.gaussian(shape, width, size=7), Gaussian(0.1),
                             nuisance={"width": dist.Uniform(0.5, 3.0)})
    x = torch.rand(2, *shape, generator=generator, dtype=torch.float64)
    y = problem.simulate(x[:1], generator=generator, width=torch.tensor(1.2, dtype=torch.float64))
    width = torch.tensor([0.9, 1.6], dtype=torch.float64, requires_grad=True)
    ll = problem.log_likelihood(x, y, width=width)
    (grad,) = torch.autograd.grad(ll.sum(), width)
    eps = 1e-6
    with torch.no_grad():
        plus = problem.log_likelihood(x, y, width=width + eps)
        minus = problem.log_likelihood(x, y, width=width - eps)
    np.testing.assert_allclose(grad.numpy(), ((plus - minus) / (2 * eps)).numpy(), rtol=1e-6)
    assert bool((grad != 0).all())


def test_kernel_gradient_through_the_operator(generator):
    kernel = torch.rand(3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 1, 6, 6, generator=generator, dtype=torch.float64)
    w = torch.randn(1, 1, 6, 6, generator=generator, dtype=torch.float64)
    (grad,) = torch.autograd.grad((Blur((1, 6, 6), kernel)(x) * w).sum(), kernel)
    # d/dk_ij sum_p w_p (k * x)_p = sum_p w_p x_{p - (i - 1, j - 1)}: a circular cross-correlation of w and x
    want = np.array([[(w[0, 0].numpy() * np.roll(x[0, 0].numpy(), (i - 1, j - 1), (0, 1))).sum() for j in range(3)]
                     for i in range(3)])
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12)


def test_ddrm_with_the_fourier_svd_of_a_real_blur_matches_the_exact_posterior_mean(generator):
    prior = GaussianPrior(torch.zeros(1, 4, 4, dtype=torch.float64), 1.0)
    problem = InverseProblem(Blur.gaussian((1, 4, 4), 0.7, size=3), Gaussian(0.05), prior)
    y = problem.simulate(prior.sample_n(1, generator=generator), generator=generator)
    post = sample_ddrm(problem, y, num_samples=1000, generator=torch.Generator().manual_seed(0), progress=False)
    exact = exact_posterior(problem, y)
    assert not post.samples.is_complex()
    assert float((post.mean() - exact.mean.reshape(post.mean().shape)).abs().max()) < 0.15


def test_blind_deblurring_pyro_model_draws_one_width_per_chain(generator):
    from pyro import poutine

    shape = (1, 8, 8)
    prior = GaussianPrior(torch.zeros(*shape, dtype=torch.float64), 1.0)
    problem = InverseProblem(lambda width: Blur.gaussian(shape, width, size=7), Gaussian(0.1), prior,
                             nuisance={"width": dist.Uniform(0.5, 3.0)})
    trace = poutine.trace(problem.model).get_trace(None, num_samples=3)
    width, x, y = (trace.nodes[k]["value"] for k in ("width", "x", "y"))
    assert width.shape == (3,) and y.shape == (3, *shape)
    # the noiseless mean of chain i is chain i's image blurred with chain i's width
    mean = trace.nodes["y"]["fn"].mean
    want = torch.cat([Blur.gaussian(shape, width[i], size=7)(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(mean.reshape(want.shape), want, rtol=1e-10, atol=1e-12)
