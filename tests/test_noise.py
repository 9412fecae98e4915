"""Noise models: log-densities against scipy, sampling moments, complex data, errors."""

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.stats
import torch

from bayesinv.errors import ShapeError
from bayesinv.noise import Gaussian, Poisson


def test_gaussian_log_prob_matches_scipy(generator):
    mean = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(1, 5, generator=generator, dtype=torch.float64)
    got = Gaussian(0.3).log_prob(y, mean)
    want = scipy.stats.norm(mean.numpy(), 0.3).logpdf(y.numpy()).sum(1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_complex_gaussian_counts_real_and_imaginary_parts(generator):
    mean = torch.randn(2, 4, generator=generator, dtype=torch.complex128)
    y = torch.randn(1, 4, generator=generator, dtype=torch.complex128)
    got = Gaussian(0.5).log_prob(y, mean)
    diff = (y - mean).numpy()
    want = (scipy.stats.norm(0, 0.5).logpdf(diff.real) + scipy.stats.norm(0, 0.5).logpdf(diff.imag)).sum(1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_complex_gaussian_sample_has_sigma_per_part(generator):
    mean = torch.zeros(1, 200_000, dtype=torch.complex128)
    y = Gaussian(0.2).sample(mean, generator=generator)
    assert abs(float(y.real.std()) - 0.2) < 0.002 and abs(float(y.imag.std()) - 0.2) < 0.002


def test_gaussian_latent_sigma_per_chain():
    noise = Gaussian(dist.LogNormal(0.0, 1.0))
    mean = torch.zeros(2, 3, dtype=torch.float64)
    y = torch.ones(1, 3, dtype=torch.float64)
    got = noise.log_prob(y, mean, sigma=torch.tensor([0.5, 2.0], dtype=torch.float64))
    want = [scipy.stats.norm(0, s).logpdf(np.ones(3)).sum() for s in (0.5, 2.0)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="latent sigma"):
        noise.log_prob(y, mean)


def test_poisson_log_prob_matches_scipy(generator):
    mean = torch.rand(2, 6, generator=generator, dtype=torch.float64) + 0.1
    noise = Poisson(gain=50.0)
    y = noise.sample(mean, generator=generator)
    got = noise.log_prob(y, mean)
    want = scipy.stats.poisson(50.0 * mean.numpy()).logpmf(np.round(50.0 * y.numpy())).sum(1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_gaussian_rejects_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(bad)


def test_real_complex_mismatch_is_an_error():
    with pytest.raises(ShapeError, match="complex"):
        Gaussian(0.1).log_prob(torch.zeros(1, 3, dtype=torch.complex128), torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match="complex"):
        Poisson().log_prob(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.complex64))


def test_gaussian_closed_form_equals_the_pyro_distribution_used_by_the_model(generator):
    """``log_prob`` (closed form) and ``distribution(...).log_prob`` (traced by the Pyro model) agree."""
    mean = torch.randn(3, 2, 4, generator=generator, dtype=torch.complex128)
    y = torch.randn(1, 2, 4, generator=generator, dtype=torch.complex128)
    noise = Gaussian(0.7)
    want = noise.distribution(mean).log_prob(torch.view_as_real(y))
    torch.testing.assert_close(noise.log_prob(y, mean), want, rtol=1e-13, atol=0)
    latent = Gaussian(dist.LogNormal(0.0, 1.0))
    sigma = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    want = latent.distribution(mean, sigma=sigma).log_prob(torch.view_as_real(y))
    torch.testing.assert_close(latent.log_prob(y, mean, sigma=sigma), want, rtol=1e-13, atol=0)
