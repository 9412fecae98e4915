"""The shipped phantom32 prior: verified loading, beats the best linear denoiser, samples like held-out phantoms.

The linear (Wiener) reference is checked against the exact Gaussian posterior mean first, so the comparison
is against the true best linear denoiser of the empirical second moments.
"""

import numpy as np
import pytest
import torch

from bayesinv.data.phantoms import phantom_dataset
from bayesinv.priors import load_prior
from bayesinv.priors.gaussian import GaussianPrior
from bayesinv.priors.hub import verify_checksums, model_dir
from bayesinv.priors.quality import (compare_denoisers, fit_linear_denoiser, image_statistics, linear_denoise,
                                     pixel_distance)
from bayesinv.priors.schedules import vp_linear


@pytest.fixture(scope="module")
def prior():
    return load_prior("phantom32")


def test_linear_denoiser_is_the_gaussian_posterior_mean():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(200, 1, 3, 3, generator=g, dtype=torch.float64) ** 2
    lin = fit_linear_denoiser(images)
    flat = images.reshape(200, -1)
    exact = GaussianPrior(flat.mean(0), torch.cov(flat.T), schedule=vp_linear(1000), event_shape=(1, 3, 3))
    t = 120
    s, alpha = float(exact.schedule.noise_level(t)), float(exact.schedule.alpha[t])
    y = images[:5] + s * torch.randn(5, 1, 3, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(linear_denoise(lin, y, s), exact.denoise(alpha * y, t), rtol=1e-8, atol=1e-10)


def test_shipped_prior_is_verified_and_well_formed(prior):
    sums = verify_checksums(model_dir("phantom32"))
    assert set(sums) == {"weights.safetensors", "config.toml"}
    assert tuple(prior.event_shape) == (1, 32, 32) and prior.parametrisation == "eps"
    assert prior.schedule.name == "vp_linear" and prior.schedule.num_steps == 1000
    x = phantom_dataset("test", 2, 32).images
    x_t = prior.schedule.add_noise(x, 300, torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    out = prior.denoise(x_t, 300)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_compare_denoisers_pairs_a_reference_prior_on_the_same_noisy_images():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(300, 1, 3, 3, generator=g, dtype=torch.float64) ** 2
    flat = images.reshape(300, -1)
    fitted = GaussianPrior(flat.mean(0), torch.cov(flat.T), schedule=vp_linear(1000), event_shape=(1, 3, 3))
    shrunk = GaussianPrior(flat.mean(0), 0.3 * torch.cov(flat.T), schedule=vp_linear(1000), event_shape=(1, 3, 3))
    lin = fit_linear_denoiser(images)
    rows = compare_denoisers(fitted, lin, images, (0.1, 0.5), generator=torch.Generator().manual_seed(2),
                             reference=shrunk)
    plain = compare_denoisers(fitted, lin, images, (0.1, 0.5), generator=torch.Generator().manual_seed(2))
    noise = torch.Generator().manual_seed(2)
    for row, without in zip(rows, plain):
        assert row[:5] == without[:5] and np.isnan(without.z_vs_reference)  # the reference changes nothing else
        alpha = float(fitted.schedule.alpha[row.timestep])
        y = images + row.noise_level * torch.randn(images.shape, generator=noise, dtype=torch.float64)
        err = {name: ((p.denoise(alpha * y, row.timestep) - images) ** 2).reshape(300, -1).mean(1)
               for name, p in (("fitted", fitted), ("shrunk", shrunk))}
        diff = err["fitted"] - err["shrunk"]
        assert row.mse_reference == pytest.approx(float(err["shrunk"].mean()), rel=1e-12)
        assert row.z_vs_reference == pytest.approx(float(diff.mean() / diff.std() * 300**0.5), rel=1e-9)
        assert row.z_vs_reference < -3  # the fitted covariance is the best linear denoiser; the shrunk one is not
    other = GaussianPrior(flat.mean(0), torch.cov(flat.T), schedule=vp_linear(500), event_shape=(1, 3, 3))
    with pytest.raises(ValueError, match="reference must use the prior's schedule"):
        compare_denoisers(fitted, lin, images, (0.1,), generator=torch.Generator().manual_seed(2), reference=other)


@pytest.mark.slow
def test_network_beats_the_best_linear_denoiser_at_every_noise_level(prior):
    linear = fit_linear_denoiser(phantom_dataset("train", 20000, 32, seed=900_000).images)
    test = phantom_dataset("test", 128, 32).images
    rows = compare_denoisers(prior, linear, test, (0.05, 0.1, 0.2, 0.5, 0.75, 1.0),
                             generator=torch.Generator().manual_seed(0))
    for row in rows:
        assert row.mse_prior < row.mse_linear, row
        if row.noise_level <= 0.5:  # there the win is also significant (paired z-score of per-image MSEs)
            assert row.paired_z < -3, row


def _spread(size, num, pairs=6):
    """Differences of each statistic between pairs of held-out sets: the sampling spread under the null."""
    sets = [phantom_dataset("test", num, size, seed=100 + k).images for k in range(2 * pairs)]
    stats = [image_statistics(s) for s in sets]
    diffs = {key: np.array([getattr(stats[2 * k], key) - getattr(stats[2 * k + 1], key) for k in range(pairs)])
             for key in ("background_fraction", "lesion_rate", "mean", "std")}
    w1 = np.array([pixel_distance(sets[2 * k], sets[2 * k + 1]) for k in range(pairs)])
    return diffs, w1


def _check(images, heldout, diffs, w1, keys):
    """Which statistics of ``images`` differ from held-out by more than 4 null standard deviations."""
    s, h = image_statistics(images), image_statistics(heldout)
    failed = [k for k in keys if abs(getattr(s, k) - getattr(h, k)) > 4 * diffs[k].std(ddof=1)]
    if pixel_distance(images, heldout) > w1.mean() + 4 * w1.std(ddof=1):
        failed.append("pixel_w1")
    return failed


KEYS = ("background_fraction", "mean", "std")


@pytest.mark.slow
def test_samples_match_heldout_statistics(prior):
    num = 32
    samples = prior.sample_n(num, steps=20, method="ddim", generator=torch.Generator().manual_seed(0))
    heldout = phantom_dataset("test", num, 32, seed=1).images
    diffs, w1 = _spread(32, num)
    assert _check(samples, heldout, diffs, w1, KEYS) == []
    # the same check rejects a different family (Shepp-Logan-like phantoms): it can fail
    wrong = phantom_dataset("test", num, 32, seed=1, family="shepp_logan").images
    assert len(_check(wrong, heldout, diffs, w1, KEYS)) >= 2
    # The lesion rate is not tested: the simple detector (~52% sensitivity, ~6% false alarms) makes the null spread
    # at affordable sample sizes wider than the whole gap between 0% and 50% prevalence. The model card reports it.
