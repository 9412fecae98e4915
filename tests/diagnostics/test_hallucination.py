"""Hallucination diagnostics against exact answers (conjugate Gaussian and two-component models)."""

import numpy as np
import pytest
import scipy.stats
import torch

from bayesinv.diagnostics.hallucination import (data_consistency, lesion_audit, lesion_contrast, lesion_probability,
                                                nullspace_decomposition, z_map)
from bayesinv.noise import Gaussian, Poisson
from bayesinv.operators.matrix import MatrixOperator


def _inpainting_matrix(mask: torch.Tensor) -> MatrixOperator:
    eye = torch.eye(mask.numel(), dtype=torch.float64)
    return MatrixOperator(eye[mask.flatten()], in_shape=tuple(mask.shape))


def test_inpainting_null_space_is_the_unobserved_pixels(generator):
    mask = torch.rand(1, 6, 6, generator=generator) < 0.5
    op = _inpainting_matrix(mask)
    x_hat = torch.randn(4, 1, 6, 6, generator=generator, dtype=torch.float64)
    y = op(torch.randn(1, 1, 6, 6, generator=generator, dtype=torch.float64))
    maps = nullspace_decomposition(op, x_hat, y)
    torch.testing.assert_close(maps.null, torch.where(mask, torch.zeros_like(x_hat), x_hat))
    # measurement-space part: the observed pixels' disagreement with y
    want = torch.where(mask, x_hat - op.adjoint(y), torch.zeros_like(x_hat))
    torch.testing.assert_close(maps.measurement, want)


def test_invertible_operator_has_no_null_space(generator):
    matrix = torch.randn(5, 5, generator=generator, dtype=torch.float64) + 3 * torch.eye(5, dtype=torch.float64)
    op = MatrixOperator(matrix)
    maps = nullspace_decomposition(op, torch.randn(3, 5, generator=generator, dtype=torch.float64))
    assert float(maps.null.abs().max()) < 1e-10


def _conjugate_posterior(matrix: np.ndarray, sigma: float, y: np.ndarray):
    """x ~ N(0, I), y = A x + N(0, sigma^2 I): posterior N(m, C)."""
    d = matrix.shape[1]
    cov = np.linalg.inv(np.eye(d) + matrix.T @ matrix / sigma**2)
    return cov @ matrix.T @ y / sigma**2, cov


def test_exact_posterior_samples_pass_the_chi2_test():
    rng = np.random.default_rng(0)
    d, m, sigma = 6, 4, 0.3
    matrix = rng.normal(size=(m, d))
    op = MatrixOperator(torch.from_numpy(matrix))
    pvals = []
    for _ in range(400):
        x = rng.normal(size=d)
        y = matrix @ x + sigma * rng.normal(size=m)
        mean, cov = _conjugate_posterior(matrix, sigma, y)
        draw = rng.multivariate_normal(mean, cov, size=1)
        res = data_consistency(op, Gaussian(sigma), torch.from_numpy(y)[None], torch.from_numpy(draw))
        assert res.dof == m
        pvals.append(float(res.pvalues[0]))
    assert scipy.stats.kstest(pvals, "uniform").pvalue > 0.01
    # the posterior mean is *not* a posterior draw: its residuals are too small (p-values pile up near 1)
    x = rng.normal(size=(200, d))
    y = x @ matrix.T + sigma * rng.normal(size=(200, m))
    means = np.stack([_conjugate_posterior(matrix, sigma, yi)[0] for yi in y])
    p_mean = [float(data_consistency(op, Gaussian(sigma), torch.from_numpy(yi)[None],
                                     torch.from_numpy(mi)[None]).pvalues[0]) for yi, mi in zip(y, means)]
    assert scipy.stats.kstest(p_mean, "uniform").pvalue < 1e-6


def test_chi2_rejects_an_inconsistent_sample():
    op = MatrixOperator(torch.eye(50, dtype=torch.float64))
    y = torch.zeros(1, 50, dtype=torch.float64)
    res = data_consistency(op, Gaussian(0.1), y, torch.stack([torch.zeros(50), torch.full((50,), 0.5)]).double())
    assert res.rejected.tolist() == [False, True]


def test_simulated_reference_for_poisson(generator):
    op = MatrixOperator(torch.eye(30, dtype=torch.float64))
    truth = torch.full((1, 30), 0.5, dtype=torch.float64)
    noise = Poisson(gain=40.0)
    y = noise.sample(truth, generator=generator)
    res = data_consistency(op, noise, y, torch.cat([truth, 3 * truth]), generator=generator)
    assert res.pvalues[0] > 0.01 and res.pvalues[1] < 0.01


def test_z_map_fraction_for_calibrated_gaussian(generator):
    truth = torch.zeros(200_000, dtype=torch.float64)
    mean = torch.randn(200_000, generator=generator, dtype=torch.float64)  # calibrated: error ~ N(0, 1)
    zm = z_map(mean, torch.ones_like(mean), truth)
    assert abs(zm.fraction_above - zm.expected_fraction) < 4 * np.sqrt(zm.expected_fraction / 200_000)
    over = z_map(mean, 0.5 * torch.ones_like(mean), truth)  # over-confident: std too small
    assert over.fraction_above > 10 * over.expected_fraction


def _two_component_testbed(rng, n_cases, sigma=0.3, size=8):
    """Prior: 1/2 N(mu0, s^2 I) + 1/2 N(mu1, s^2 I), mu1 = mu0 + a lesion disc; y = blur-free subsampling + noise."""
    d = size * size
    mu0 = np.full(d, 0.5)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    disc = (np.hypot(rows - 4, cols - 4) <= 1.5).ravel()
    mu1 = mu0 + 0.5 * disc
    s = 0.02
    keep = rng.random(d) < 0.5
    matrix = np.eye(d)[keep]
    cases = []
    for _ in range(n_cases):
        k = rng.random() < 0.5
        x = (mu1 if k else mu0) + s * rng.normal(size=d)
        y = matrix @ x + sigma * rng.normal(size=matrix.shape[0])
        logw, comps = [], []
        for mu in (mu0, mu1):
            cov_y = s**2 * matrix @ matrix.T + sigma**2 * np.eye(matrix.shape[0])
            logw.append(scipy.stats.multivariate_normal(matrix @ mu, cov_y).logpdf(y))
            prec = np.eye(d) / s**2 + matrix.T @ matrix / sigma**2
            cov = np.linalg.inv(prec)
            comps.append((cov @ (mu / s**2 + matrix.T @ y / sigma**2), cov))
        w1 = 1 / (1 + np.exp(logw[0] - logw[1]))
        cases.append((k, w1, comps))
    return cases, size


def test_lesion_probability_matches_exact_component_weight():
    rng = np.random.default_rng(1)
    cases, size = _two_component_testbed(rng, 60)
    num_samples = 400
    probs, exact, truth = [], [], []
    for k, w1, comps in cases:
        labels = rng.random(num_samples) < w1
        draws = np.where(labels[:, None], rng.multivariate_normal(*comps[1], size=num_samples),
                         rng.multivariate_normal(*comps[0], size=num_samples))
        samples = torch.from_numpy(draws).reshape(1, num_samples, 1, size, size)
        probs.append(float(lesion_probability(samples, torch.tensor([[4.0, 4.0]]), threshold=0.25)[0]))
        exact.append(w1)
        truth.append(k)
    probs, exact = np.array(probs), np.array(exact)
    # detector is exact on each component, so P(lesion|y) estimates w1 with binomial error only
    assert np.max(np.abs(probs - exact)) < 4 * np.sqrt(0.25 / num_samples)
    calibrated = lesion_audit(torch.from_numpy(exact), torch.tensor(truth))
    # an over-confident sampler: always all samples from the more likely component
    overconfident = lesion_audit(torch.from_numpy((exact > 0.5).astype(float)), torch.tensor(truth))
    assert overconfident.brier >= calibrated.brier
    assert 0.0 <= calibrated.ece <= 1 and calibrated.auc > 0.5


def test_lesion_audit_counts_and_auc():
    prob = torch.tensor([0.9, 0.8, 0.2, 0.6, 0.1, 0.3])
    truth = torch.tensor([True, True, True, False, False, False])
    audit = lesion_audit(prob, truth)
    assert audit.false_lesion_rate == pytest.approx(1 / 3) and audit.missed_lesion_rate == pytest.approx(1 / 3)
    # AUC by hand: pairs (pos > neg) / 9 = (3 + 3 + 1) / 9
    assert audit.auc == pytest.approx(7 / 9)
    assert audit.brier == pytest.approx(float(((prob - truth.double()) ** 2).mean()))
    lo, hi = audit.false_lesion_cp
    ref = (scipy.stats.beta.ppf(0.025, 1, 3), scipy.stats.beta.ppf(0.975, 2, 2))  # k=1, n=3
    assert (lo, hi) == pytest.approx(tuple(ref))


def _disc_image(size, centre, radius, amplitude, background):
    rows, cols = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    img = background.clone() if torch.is_tensor(background) else torch.full((size, size), float(background))
    img = img.double()
    img[torch.hypot(rows - centre[0], cols - centre[1]) <= radius] += amplitude
    return img[None, None]


def test_lesion_contrast_on_a_known_disc():
    img = _disc_image(16, (8, 8), 1.5, 0.4, 0.0)
    assert float(lesion_contrast(img, torch.tensor([[8.0, 8.0]]))[0]) == pytest.approx(0.4, abs=1e-12)
    assert float(lesion_contrast(img, torch.tensor([[3.0, 3.0]]))[0]) == pytest.approx(0.0, abs=1e-12)
    dark = _disc_image(16, (8, 8), 1.0, -0.3, 0.5)  # dark disc on a grey background
    assert float(lesion_contrast(dark, torch.tensor([[8.0, 8.0]]))[0]) == pytest.approx(-0.3, abs=1e-12)


def test_lesion_contrast_flat_image_is_zero():
    flat = torch.full((3, 2, 1, 12, 12), 0.37, dtype=torch.float64)
    centres = torch.tensor([[5.0, 5.0], [2.0, 9.0], [6.0, 6.5]])
    assert torch.equal(lesion_contrast(flat, centres).abs(), torch.zeros(3, 2, dtype=torch.float64))


def test_lesion_contrast_on_a_ramp_background_is_the_disc_amplitude():
    """A linear background has mean over a symmetric disc and median over a symmetric annulus both equal
    to its centre value, so the contrast is exactly the disc's amplitude (a ring mean would agree here)."""
    axis = torch.arange(16, dtype=torch.float64)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    ramp = 0.2 + 0.03 * rows - 0.02 * cols
    img = _disc_image(16, (7, 8), 1.0, 0.25, ramp)
    assert float(lesion_contrast(img, torch.tensor([[7.0, 8.0]]))[0]) == pytest.approx(0.25, abs=1e-12)


def test_lesion_contrast_ignores_an_edge_crossing_less_than_half_the_annulus():
    """The annulus median is the background even when a few annulus pixels lie across an edge;
    the annulus mean used by a plain ring detector would be pulled towards the other side."""
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centre, ring = (8, 8), (2.0, 3.0)
    background = torch.where(cols >= 10.5, 0.9, 0.4)  # a bright structure right of the lesion
    dist = torch.hypot(rows - 8, cols - 8)
    annulus = (dist >= ring[0]) & (dist <= ring[1])
    across = int((annulus & (cols >= 10.5)).sum())
    assert 0 < across < int(annulus.sum()) / 2  # the premise: the edge crosses part of the annulus
    img = _disc_image(16, centre, 1.0, 0.3, background)
    got = float(lesion_contrast(img, torch.tensor([[8.0, 8.0]]), ring=ring)[0])
    assert got == pytest.approx(0.3, abs=1e-12)
    ring_mean = float(img[0, 0][annulus].mean())
    assert 0.7 - ring_mean < 0.3 - 1e-3  # a ring mean would under-state the contrast


def test_lesion_contrast_averages_channels_and_matches_numpy():
    gen = torch.Generator().manual_seed(3)
    img = torch.rand(2, 4, 2, 10, 10, generator=gen, dtype=torch.float64)
    centres = torch.tensor([[4.0, 5.0], [5.0, 4.0]])
    got = lesion_contrast(img, centres, radius=1.0, ring=(2.0, 3.5))
    rows, cols = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    for i, (r, c) in enumerate(centres.tolist()):
        dist = np.hypot(rows - r, cols - c)
        for s in range(4):
            x = img[i, s].mean(0).numpy()
            ref = x[dist <= 1.0].mean() - np.median(x[(dist >= 2.0) & (dist <= 3.5)])
            assert float(got[i, s]) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("kwargs", [{"radius": 2.0, "ring": (2.0, 3.0)}, {"radius": 1.0, "ring": (3.0, 2.5)},
                                    {"radius": -1.0}])
def test_lesion_contrast_rejects_bad_geometry(kwargs):
    with pytest.raises(ValueError, match="radius"):
        lesion_contrast(torch.zeros(1, 1, 8, 8), torch.tensor([[4.0, 4.0]]), **kwargs)


def test_lesion_contrast_rejects_mismatched_centres():
    with pytest.raises(ValueError, match="centers"):
        lesion_contrast(torch.zeros(2, 1, 8, 8), torch.tensor([[4.0, 4.0]]))


def test_overconfident_sampler_on_the_two_component_testbed_is_miscalibrated():
    """Shrinking samples about the mean of the more likely component (an over-confident sampler) makes
    P(lesion|y) all-or-nothing: its ECE and Brier exceed those of the exact posterior's probabilities."""
    rng = np.random.default_rng(2)
    cases, size = _two_component_testbed(rng, 300, sigma=0.6)
    num_samples = 100
    centre = torch.tensor([[4.0, 4.0]])
    exact_p, over_p, truth = [], [], []
    for k, w1, comps in cases:
        labels = rng.random(num_samples) < w1
        draws = np.where(labels[:, None], rng.multivariate_normal(*comps[1], size=num_samples),
                         rng.multivariate_normal(*comps[0], size=num_samples))
        mode = comps[int(w1 > 0.5)][0]
        shrunk = mode + 0.1 * (rng.multivariate_normal(*comps[int(w1 > 0.5)], size=num_samples) - mode)
        for store, arr in ((exact_p, draws), (over_p, shrunk)):
            store.append(float(lesion_probability(torch.from_numpy(arr).reshape(1, num_samples, 1, size, size),
                                                  centre, threshold=0.25)[0]))
        truth.append(k)
    exact = lesion_audit(torch.tensor(exact_p), torch.tensor(truth))
    over = lesion_audit(torch.tensor(over_p), torch.tensor(truth))
    assert set(over_p) <= {0.0, 1.0} and 0 < np.mean(np.array(exact_p) % 1 > 0)
    assert exact.ece < 0.1 and over.ece > exact.ece and over.brier > exact.brier
