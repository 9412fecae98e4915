"""SBC against an exact conjugate posterior (uniform ranks) and an over-confident one (rejected)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from bayesinv.diagnostics.sbc import rank_histogram, rank_uniformity, sbc, sbc_ranks
from bayesinv.errors import ShapeError


def conjugate(num_cases: int, num_samples: int, event=(1, 8, 8), seed: int = 0, shrink: float = 1.0):
    """x ~ N(0, I), y = x + noise; exact posterior N(y/2, 1/2), optionally shrunk about its mean."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_cases, *event, generator=g, dtype=torch.float64)
    mean = (x + torch.randn(x.shape, generator=g, dtype=torch.float64)) / 2
    draws = mean[:, None] + 0.5**0.5 * torch.randn(num_cases, num_samples, *event, generator=g, dtype=torch.float64)
    return mean[:, None] + shrink * (draws - mean[:, None]), x


def lesion_mask(num_cases: int) -> torch.Tensor:
    mask = torch.zeros(num_cases, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:5, 3:6] = True
    return mask


def test_exact_posterior_gives_uniform_ranks():
    samples, truths = conjugate(300, 49)
    res = sbc(samples, truths, mask=lesion_mask(300), generator=torch.Generator().manual_seed(1))
    assert set(res.summaries) == {"mean_intensity", "random_projection", "contrast"}
    for test in [res.pixels, *res.summaries.values()]:
        assert test.ranks.min() >= 0 and test.ranks.max() <= 49
        assert test.pvalue_chi2 > 1e-3 and test.pvalue_ks > 1e-3
        assert test.outside_band == 0
        assert test.counts.sum() == test.ranks.size
    assert res.pixels.ranks.size == 300 * 64


def test_overconfident_sampler_is_rejected():
    samples, truths = conjugate(300, 49, shrink=0.5)
    res = sbc(samples, truths, mask=lesion_mask(300), generator=torch.Generator().manual_seed(1))
    for test in [res.pixels, *res.summaries.values()]:
        assert test.pvalue_chi2 < 1e-6 and test.pvalue_ks < 1e-6
        assert test.outside_band >= 2
    # over-confidence piles ranks at both ends (U shape)
    counts = res.pixels.counts
    assert counts[0] > 2 * counts[len(counts) // 2] and counts[-1] > 2 * counts[len(counts) // 2]


def test_ranks_and_ties_exact():
    g = torch.Generator().manual_seed(0)
    s = np.array([[0.0, 1.0, 1.0, 1.0, 2.0]] * 4000)
    t = np.ones(4000)
    r = sbc_ranks(s, t, g)
    # one sample below, three ties: rank uniform on {1, 2, 3, 4}
    assert set(np.unique(r)) == {1, 2, 3, 4}
    assert scipy.stats.chisquare(np.bincount(r)[1:]).pvalue > 1e-3


def test_histogram_probabilities_and_band():
    counts, probs = rank_histogram(np.arange(10), 9, 3)  # ranks 0..9 split into 3, 4, 3 (rounded edges)
    assert counts.sum() == 10 and probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(counts / 10, probs)
    g = torch.Generator().manual_seed(2)
    ranks = torch.randint(0, 20, (5000,), generator=g).numpy()
    test = rank_uniformity(ranks, 19, num_bins=10, confidence=0.99, generator=g)
    # band = Bonferroni binomial quantiles
    np.testing.assert_allclose(test.band_high, scipy.stats.binom.ppf(1 - 0.01 / 20, 5000, 0.1))
    assert test.outside_band == 0 and test.pvalue_ks > 1e-3


def test_bad_input():
    samples, truths = conjugate(4, 5, event=(3,))
    with pytest.raises(ShapeError, match="mask"):
        sbc(samples, truths, mask=np.ones((4, 2), bool), generator=torch.Generator())
    with pytest.raises(ValueError, match="num_bins"):
        sbc(samples, truths, num_bins=7, generator=torch.Generator())
