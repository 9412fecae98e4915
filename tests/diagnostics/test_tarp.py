"""TARP against an exact conjugate posterior (diagonal curve) and an over-confident one (off-diagonal)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesinv.diagnostics.tarp import expected_coverage, tarp, tarp_fractions
from bayesinv.errors import ShapeError


def conjugate(num_cases: int, num_samples: int, event=(1, 8, 8), seed: int = 0, shrink: float = 1.0):
    """x ~ N(0, I), y = x + noise; exact posterior N(y/2, 1/2), optionally shrunk about its mean."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_cases, *event, generator=g, dtype=torch.float64)
    mean = (x + torch.randn(x.shape, generator=g, dtype=torch.float64)) / 2
    draws = mean[:, None] + 0.5**0.5 * torch.randn(num_cases, num_samples, *event, generator=g, dtype=torch.float64)
    return mean[:, None] + shrink * (draws - mean[:, None]), x


@pytest.mark.parametrize("references,normalize", [("uniform", "standardize"), ("uniform", "range"),
                                                  ("truths", "standardize")])
def test_exact_posterior_gives_diagonal(references, normalize):
    samples, truths = conjugate(400, 50)
    res = tarp(samples, truths, references=references, normalize=normalize,
               generator=torch.Generator().manual_seed(5))
    assert res.alpha[0] == 0 and res.alpha[-1] == 1 and res.ecp[0] == 0 and res.ecp[-1] == 1
    assert res.max_deviation <= res.deviation_band
    assert res.max_deviation < 0.08
    assert abs(res.atc) < 0.03
    assert res.pvalue_ks > 1e-3
    inside = (res.band_low <= res.alpha) & (res.alpha <= res.band_high)
    assert inside.mean() > 0.8


def test_overconfident_sampler_is_off_diagonal():
    samples, truths = conjugate(400, 50, shrink=0.5)
    res = tarp(samples, truths, generator=torch.Generator().manual_seed(5))
    assert res.max_deviation > 2 * res.deviation_band
    assert res.max_deviation > 0.2
    assert res.pvalue_ks < 1e-6
    # truths lie outside the (too small) sample clouds: f piles up at 0 and 1
    assert np.mean((res.fractions < 0.05) | (res.fractions > 0.95)) > 0.5


def test_fractions_against_direct_loop():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 7, 3, generator=g, dtype=torch.float64).numpy()
    t = torch.randn(6, 3, generator=g, dtype=torch.float64).numpy()
    r = torch.randn(6, 3, generator=g, dtype=torch.float64).numpy()
    metrics = (("euclidean", lambda a, b: np.linalg.norm(a - b)), ("manhattan", lambda a, b: np.abs(a - b).sum()))
    for metric, dist in metrics:
        closer, frac = tarp_fractions(s, t, r, metric)
        for n in range(6):
            k = sum(dist(s[n, i], r[n]) < dist(t[n], r[n]) for i in range(7))
            assert closer[n] == k and frac[n] == pytest.approx(k / 7)
    alpha = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(expected_coverage(np.array([0.1, 0.3, 0.3, 0.9]), alpha), [0, 0.25, 0.75, 1])


def test_bad_input():
    samples, truths = conjugate(10, 5, event=(3,))
    with pytest.raises(ValueError, match="metric"):
        tarp(samples, truths, metric="cosine", generator=torch.Generator())
    with pytest.raises(ValueError, match="normalize"):
        tarp(samples, truths, normalize="zscore", generator=torch.Generator())
    with pytest.raises(ShapeError, match="references"):
        tarp(samples, truths, references=np.zeros((10, 2)), generator=torch.Generator())
