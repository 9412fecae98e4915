"""RCPS recalibration: Hoeffding–Bentkus bound against direct computations, and risk control on held-out
splits for an exact, an over-confident and a point-estimate "sampler" of a conjugate Gaussian model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from bayesinv.diagnostics.conformal import (bentkus_pvalue, hb_pvalue, hb_ucb, hoeffding_pvalue, interval_family,
                                            miscoverage_risk, needed_scale, point_bounds, rcps_apply,
                                            rcps_calibrate, sample_bounds)
from bayesinv.errors import ShapeError


def conjugate(num_cases: int, num_samples: int, event=(1, 8, 8), seed: int = 0, shrink: float = 1.0):
    """x ~ N(0, I), y = x + noise; exact posterior N(y/2, 1/2), optionally shrunk about its mean."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_cases, *event, generator=g, dtype=torch.float64)
    mean = (x + torch.randn(x.shape, generator=g, dtype=torch.float64)) / 2
    draws = mean[:, None] + 0.5**0.5 * torch.randn(num_cases, num_samples, *event, generator=g, dtype=torch.float64)
    return mean[:, None] + shrink * (draws - mean[:, None]), x, mean


def test_hb_pvalues_against_direct_formulas():
    for risk_hat, n, risk in ((0.05, 100, 0.1), (0.0, 50, 0.2), (0.12, 1000, 0.1), (0.031, 400, 0.05)):
        a = min(risk_hat, risk)
        kl = a * math.log(a / risk) if a > 0 else 0.0
        kl += (1 - a) * math.log((1 - a) / (1 - risk))
        assert hoeffding_pvalue(risk_hat, n, risk) == pytest.approx(math.exp(-n * kl), rel=1e-12)
        k = math.ceil(n * risk_hat - 1e-12)
        direct = math.e * sum(scipy.stats.binom.pmf(i, n, risk) for i in range(k + 1))
        assert bentkus_pvalue(risk_hat, n, risk) == pytest.approx(min(1.0, direct), rel=1e-9)
        both = (hoeffding_pvalue(risk_hat, n, risk), bentkus_pvalue(risk_hat, n, risk))
        assert hb_pvalue(risk_hat, n, risk) == min(both)


@pytest.mark.parametrize("k,n,delta", [(5, 100, 0.1), (0, 30, 0.05), (40, 400, 0.1), (120, 1000, 0.01)])
def test_hb_ucb_inverts_pvalue_and_dominates_clopper_pearson(k, n, delta):
    ucb = hb_ucb(k / n, n, delta)
    assert hb_pvalue(k / n, n, ucb) == pytest.approx(delta, rel=1e-6)
    assert hb_pvalue(k / n, n, ucb - 1e-4) > delta > hb_pvalue(k / n, n, ucb + 1e-4)
    # by brute force on a grid
    grid = np.linspace(k / n, min(1 - 1e-9, k / n + 0.3), 3001)
    brute = max(r for r in grid if hb_pvalue(k / n, n, r) > delta)
    assert ucb == pytest.approx(brute, abs=2e-4)
    # for Bernoulli losses the exact one-sided bound is Clopper-Pearson; HB is a valid (looser) bound
    cp_upper = scipy.stats.beta.ppf(1 - delta, k + 1, n - k)
    assert cp_upper <= ucb < cp_upper + 0.05


def test_interval_family_and_needed_scale():
    c, lo, hi = np.array([[0.0, 0.0, 1.0]]), np.array([[-1.0, -2.0, 1.0]]), np.array([[2.0, 1.0, 1.0]])
    x = np.array([[-0.5, 3.0, 1.0]])
    r = needed_scale(c, lo, hi, x)
    np.testing.assert_allclose(r, [[0.5, 3.0, 0.0]])
    a, b = interval_family(c, lo, hi, r)
    assert np.all((a <= x + 1e-12) & (x <= b + 1e-12))
    a, b = interval_family(c, lo, hi, 0.99 * r)
    assert miscoverage_risk(a, b, x)[0] == pytest.approx(2 / 3)


def _risk_on_test(result, bounds, truths):
    lo, hi = rcps_apply(result, *bounds)
    return miscoverage_risk(lo, hi, truths).mean()


@pytest.mark.parametrize("shrink,lam_range", [(1.0, (0.95, 1.25)), (0.5, (1.9, 2.6))])
def test_rcps_restores_coverage(shrink, lam_range):
    alpha, delta = 0.1, 0.1
    samples, truths, _ = conjugate(600, 100, shrink=shrink)
    bounds = sample_bounds(samples, level=0.9)
    cal, test = slice(0, 300), slice(300, 600)
    raw = miscoverage_risk(bounds[1][test], bounds[2][test], truths[test]).mean()
    res = rcps_calibrate(*(b[cal] for b in bounds), truths[cal], alpha=alpha, delta=delta)
    assert res.controlled and res.ucb < alpha
    assert lam_range[0] < float(res.lam) < lam_range[1]
    risk = _risk_on_test(res, [b[test] for b in bounds], truths[test])
    assert risk <= alpha
    assert risk > alpha - 0.05  # not trivially wide
    if shrink < 1:
        assert raw > 0.35  # the shrunk sampler's raw 90% intervals miss ~ 2 (1 - Phi(0.82)) = 41%


def test_rcps_grouped_and_point_estimate_baseline():
    alpha, delta = 0.1, 0.1
    # heteroscedastic: the sampler is exact on the left half and shrunk by 0.5 on the right half
    exact, truths, mean = conjugate(600, 100)
    shrunk, _, _ = conjugate(600, 100, shrink=0.5)
    right = torch.zeros(1, 8, 8, dtype=torch.bool)
    right[..., 4:] = True
    samples = torch.where(right, shrunk, exact)
    bounds = sample_bounds(samples, level=0.9)
    cal, test = slice(0, 400), slice(400, 600)
    groups = right.long().numpy()
    res = rcps_calibrate(*(b[cal] for b in bounds), truths[cal], alpha=alpha, delta=delta, groups=groups,
                         generator=torch.Generator().manual_seed(0))
    assert res.controlled and res.num_fit == 200 and res.num_rcps == 200
    lam = res.lam.reshape(8, 8)
    assert 1.7 < lam[:, 4:].mean() / lam[:, :4].mean() < 2.3  # the shrunk half needs ~2x the scale
    lo, hi = rcps_apply(res, *(b[test] for b in bounds))
    out = (truths[test].numpy() < lo) | (truths[test].numpy() > hi)
    assert out.mean() <= alpha
    # balanced: each half misses at a similar rate (a scalar lambda would over-cover one half)
    assert abs(out[..., :4].mean() - out[..., 4:].mean()) < 0.05

    # point estimate: posterior mean only; x_hat -/+ 1 with a per-pixel learned residual scale
    pb = point_bounds(mean)
    res_p = rcps_calibrate(*(b[cal] for b in pb), truths[cal], alpha=alpha, delta=delta, groups="pixel",
                           generator=torch.Generator().manual_seed(0))
    risk = _risk_on_test(res_p, [b[test] for b in pb], truths[test])
    assert res_p.controlled and risk <= alpha
    # residual x - x_hat ~ N(0, 1/2): the alpha-risk half-width is z_{0.95} / sqrt(2) ~ 1.16 (+ UCB margin)
    assert 1.1 < np.median(res_p.lam) < 1.6


def test_bad_input():
    samples, truths, _ = conjugate(10, 5, event=(3,))
    b = sample_bounds(samples)
    with pytest.raises(ShapeError, match="truths"):
        rcps_calibrate(*b, truths[:, :2])
    with pytest.raises(ValueError, match="alpha"):
        rcps_calibrate(*b, truths, alpha=1.5)
    with pytest.raises(ValueError, match="groups"):
        rcps_calibrate(*b, truths, groups="rows")
    with pytest.raises(ShapeError, match="groups"):
        rcps_calibrate(*b, truths, groups=np.zeros(4, int))
    with pytest.raises(ValueError, match="delta"):
        hb_ucb(0.1, 10, 0.0)


def test_guarantee_frequency_over_random_splits():
    """P(test risk > alpha) <= delta over calibration draws: count violations over 30 random splits."""
    alpha, delta = 0.1, 0.2
    samples, truths, _ = conjugate(400, 40, event=(16,), shrink=0.5)
    bounds = sample_bounds(samples, level=0.8)
    g = torch.Generator().manual_seed(7)
    violations, lams = 0, []
    for _ in range(30):
        perm = torch.randperm(400, generator=g).numpy()
        cal, test = perm[:100], perm[100:]
        res = rcps_calibrate(*(b[cal] for b in bounds), truths[cal], alpha=alpha, delta=delta)
        violations += _risk_on_test(res, [b[test] for b in bounds], truths[test]) > alpha
        lams.append(float(res.lam))
    # binomial(30, 0.2) exceeds 11 with probability < 1%; HB is conservative so violations are rare
    assert violations <= 11
    assert np.std(lams) > 0  # the splits really differ


def test_crc_threshold_is_the_first_grid_point_meeting_the_bound():
    samples, truths, _ = conjugate(30, 50, shrink=0.5)
    bounds = sample_bounds(samples, level=0.9)
    betas = np.linspace(0, 4, 401)
    res = rcps_calibrate(*bounds, truths, alpha=0.1, betas=betas, method="crc")
    # brute force: R_hat(beta) over the grid, then inf{beta : (n R_hat + 1)/(n + 1) <= alpha}
    risk = np.array([miscoverage_risk(*interval_family(*bounds, b), truths).mean() for b in betas])
    ok = (30 * risk + 1) / 31 <= 0.1
    assert res.controlled and res.method == "crc"
    assert res.beta == betas[np.argmax(ok)] and res.ucb == pytest.approx((30 * risk[np.argmax(ok)] + 1) / 31)
    with pytest.raises(ValueError, match="method must be 'hb' or 'crc'"):
        rcps_calibrate(*bounds, truths, method="ltt")


def test_crc_controls_expected_risk_tightly_with_few_cases():
    """E[test risk] <= alpha over random calibration draws of n = 20 (RCPS cannot control alpha = 0.1 there)."""
    alpha = 0.1
    samples, truths, _ = conjugate(420, 40, event=(16,), shrink=0.5)
    bounds = sample_bounds(samples, level=0.8)
    g = torch.Generator().manual_seed(3)
    risks = []
    for _ in range(40):
        perm = torch.randperm(420, generator=g).numpy()
        cal, test = perm[:20], perm[20:]
        res = rcps_calibrate(*(b[cal] for b in bounds), truths[cal], alpha=alpha, method="crc")
        risks.append(_risk_on_test(res, [b[test] for b in bounds], truths[test]))
    assert np.mean(risks) <= alpha
    assert np.mean(risks) > alpha - 2 / 21  # the theorem's lower bound: not trivially wide
    hb = rcps_calibrate(*(b[:20] for b in bounds), truths[:20], alpha=alpha, delta=0.1)
    assert not hb.controlled  # (1 - alpha)^20 = 0.12 > delta: no RCPS threshold exists
