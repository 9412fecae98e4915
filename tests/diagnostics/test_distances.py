"""Sliced Wasserstein, MMD and the noise floor against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from bayesinv.diagnostics.distances import (distance_to_reference, median_bandwidth, mmd, noise_floor,
                                            random_directions, sliced_wasserstein, wasserstein_1d)
from bayesinv.errors import ShapeError
from bayesinv.posterior import Posterior
from bayesinv.priors import GaussianPrior


def test_wasserstein_1d_matches_scipy_for_unequal_sizes(generator):
    x = torch.randn(37, generator=generator, dtype=torch.float64)
    y = 2 * torch.randn(53, generator=generator, dtype=torch.float64) + 1
    assert float(wasserstein_1d(x, y, p=1)) == pytest.approx(stats.wasserstein_distance(x.numpy(), y.numpy()),
                                                            rel=1e-12)
    assert float(wasserstein_1d(x, x[:20], p=1)) == pytest.approx(stats.wasserstein_distance(x.numpy(), x[:20].numpy()),
                                                                 rel=1e-12)


def test_wasserstein_1d_equal_sizes_and_batching(generator):
    x = torch.randn(3, 10, generator=generator, dtype=torch.float64)
    y = torch.randn(3, 10, generator=generator, dtype=torch.float64)
    expected = ((x.sort(-1).values - y.sort(-1).values) ** 2).mean(-1).sqrt()
    torch.testing.assert_close(wasserstein_1d(x, y), expected)
    # unequal-size code path agrees with the equal-size formula when one set is duplicated
    torch.testing.assert_close(wasserstein_1d(x, torch.cat([y, y], -1)), expected)
    # W2 of N(m1, s1) vs N(m2, s2) computed by quantile functions at large n
    u = (torch.arange(20000, dtype=torch.float64) + 0.5) / 20000
    q = torch.from_numpy(stats.norm.ppf(u.numpy()))
    assert float(wasserstein_1d(1 + 2 * q, -1 + 0.5 * q)) == pytest.approx(math.sqrt(4 + 1.5**2), rel=1e-3)


def test_sliced_wasserstein_between_isotropic_gaussians_has_closed_form():
    """theta^T X ~ N(theta^T m1, s1^2): SW_2^2 = E(theta^T dm)^2 + (s1 - s2)^2 = |dm|^2/d + (s1 - s2)^2."""
    g = torch.Generator().manual_seed(0)
    d, n = 3, 8000
    dm = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    x = 1.0 * torch.randn(n, d, generator=g, dtype=torch.float64)
    y = dm + 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    dirs = random_directions(d, 500, generator=g)
    # conditional on the directions the closed form is sqrt(mean_theta (theta^T dm)^2 + (s1 - s2)^2)
    expected = math.sqrt(float(((dirs @ dm) ** 2).mean()) + 0.5**2)
    assert float(sliced_wasserstein(x, y, directions=dirs)) == pytest.approx(expected, rel=0.03)  # ~1% sampling sd
    # and its expectation over directions is |dm|^2 / d + (s1 - s2)^2
    assert float(((random_directions(d, 200000, generator=g) @ dm) ** 2).mean()) == pytest.approx(
        float(dm @ dm) / d, rel=0.01)
    # the value is invariant to reshaping the event and accepts a Posterior
    post = Posterior(x.reshape(n, 1, 1, 3))
    dirs = random_directions(d, 64, generator=torch.Generator().manual_seed(1))
    assert float(sliced_wasserstein(post, y, directions=dirs)) == float(sliced_wasserstein(x, y, directions=dirs))


def test_sliced_wasserstein_of_a_translation_in_1d_is_the_shift(generator):
    x = torch.randn(100, 1, generator=generator, dtype=torch.float64)
    assert float(sliced_wasserstein(x, x + 0.7, num_projections=5, generator=generator)) == pytest.approx(0.7)


def test_mmd_matches_the_gaussian_closed_form():
    """E k(X, Y) = (h^2/(h^2+s^2))^{d/2} exp(-|dm|^2 / (2(h^2+s^2))) with s^2 = s_x^2 + s_y^2 for RBF k."""
    g = torch.Generator().manual_seed(3)
    d, h, n = 2, 1.0, 3000
    dm = torch.tensor([0.8, 0.0], dtype=torch.float64)

    def ek(var, shift2):
        return (h**2 / (h**2 + var)) ** (d / 2) * math.exp(-shift2 / (2 * (h**2 + var)))

    population = ek(2.0, 0.0) + ek(2 * 0.25, 0.0) - 2 * ek(1.25, float(dm @ dm))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = dm + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    assert float(mmd(x, y, bandwidth=h)) == pytest.approx(population, abs=0.01)


def test_mmd_of_same_distribution_is_near_zero_and_unbiased():
    g = torch.Generator().manual_seed(4)
    values = [float(mmd(torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g))) for _ in range(30)]
    # the estimator is unbiased: its mean over replications is within 4 standard errors of zero
    assert abs(np.mean(values)) < 4 * np.std(values) / np.sqrt(len(values))
    assert min(values) < 0 < max(values)
    x = torch.randn(50, 2, generator=g)
    assert float(mmd(x, x + 5.0)) > 0.5


def test_median_bandwidth_is_the_median_distance():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[3.0]], dtype=torch.float64)
    # pairwise distances among {0, 1, 3}: 1, 3, 2 -> median 2
    assert median_bandwidth(x, y) == 2.0


def test_distance_to_reference_and_noise_floor():
    prior = GaussianPrior(torch.zeros(4), 1.0)
    good = prior.sample_n(500, generator=torch.Generator().manual_seed(5))
    bad = good * 1.6 + 0.5
    res_good = distance_to_reference(good, prior, generator=torch.Generator().manual_seed(6))
    res_bad = distance_to_reference(bad, prior, generator=torch.Generator().manual_seed(6))
    assert res_good.floor == res_bad.floor  # same reference draws and directions
    assert res_good.ratio < 2.0 < res_bad.ratio
    assert res_good.num_samples == 500 and res_good.metric == "sliced_wasserstein"
    floor = noise_floor(prior, 500, generator=torch.Generator().manual_seed(7))
    assert 0 < floor < 0.2
    # the floor shrinks like n^{-1/2} (SW between two n-samples ~ c / sqrt(n) for smooth targets)
    big = noise_floor(prior, 8000, generator=torch.Generator().manual_seed(7))
    assert big < 0.5 * floor
    res_mmd = distance_to_reference(bad, prior.sample_n, distance="mmd", generator=torch.Generator().manual_seed(8))
    assert res_mmd.distance > 10 * abs(res_mmd.floor)


def test_bad_inputs_raise_clear_errors(generator):
    x = torch.randn(10, 2, generator=generator)
    with pytest.raises(ShapeError, match="same event size"):
        sliced_wasserstein(x, torch.randn(10, 3, generator=generator))
    with pytest.raises(ShapeError, match="at least 2 samples"):
        mmd(x[:1], x)
    with pytest.raises(ValueError, match="unknown distance"):
        distance_to_reference(x, lambda n, generator=None: torch.randn(n, 2, generator=generator), distance="kl")
    with pytest.raises(TypeError, match="exact_sampler must be callable"):
        distance_to_reference(x, 3)
