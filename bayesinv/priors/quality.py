r"""Quality checks of a learned prior against references that need no network.

* **Linear MMSE (Wiener) denoiser.** From the empirical mean ``mu`` and covariance ``C = V diag(lambda) V^T`` of
  training images, the best *linear* estimate of ``x0`` from ``y = x0 + s n`` is
  ``mu + V diag(lambda / (lambda + s^2)) V^T (y - mu)`` (exact for the empirical second moments). A denoiser
  that learned more than second-order statistics must beat it in MSE at every noise level ``s``.
* **Sample statistics.** Simple statistics of a set of images, compared between generated samples and held-out
  phantoms: the pixel-value distribution (1-Wasserstein distance between the pooled pixel values), the
  fraction of background pixels (``x < 0.02``), and the rate of a simple lesion detector (the largest absolute
  residual after a 5x5 median filter exceeds 0.25; on phantoms it fires on about 52% of images with a lesion
  and 6% without, so its rate moves with the lesion prevalence). Tolerances are set against the spread of the
  same statistics between two held-out sets of the same size.

>>> import torch
>>> images = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
>>> lin = fit_linear_denoiser(images)
>>> bool(torch.allclose(linear_denoise(lin, images, 0.0), images, atol=1e-6))  # no noise: identity
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage, stats

from bayesinv.priors.base import ScorePrior

__all__ = ["LinearDenoiser", "fit_linear_denoiser", "linear_denoise", "DenoisingComparison", "compare_denoisers",
           "ImageStatistics", "image_statistics", "pixel_distance", "lesion_scores", "BACKGROUND_LEVEL",
           "LESION_THRESHOLD"]

BACKGROUND_LEVEL = 0.02
LESION_THRESHOLD = 0.25


class LinearDenoiser(NamedTuple):
    mean: torch.Tensor  # (d,) float64
    eigvals: torch.Tensor  # (d,) eigenvalues of the empirical covariance, clipped at 0
    eigvecs: torch.Tensor  # (d, d)


def fit_linear_denoiser(images: torch.Tensor) -> LinearDenoiser:
    """Empirical mean and covariance eigendecomposition of ``images: (N, *shape)`` (float64)."""
    flat = images.reshape(images.shape[0], -1).double()
    eigvals, eigvecs = torch.linalg.eigh(torch.cov(flat.T))
    return LinearDenoiser(flat.mean(0), eigvals.clamp(min=0), eigvecs)


def linear_denoise(model: LinearDenoiser, y: torch.Tensor, noise_level: float) -> torch.Tensor:
    """The Wiener estimate ``mu + V diag(lambda/(lambda + s^2)) V^T (y - mu)`` for ``y: (B, *shape)``."""
    centred = y.reshape(y.shape[0], -1).double() - model.mean
    gain = model.eigvals / (model.eigvals + noise_level**2) if noise_level > 0 else torch.ones_like(model.eigvals)
    out = model.mean + ((centred @ model.eigvecs) * gain) @ model.eigvecs.T
    return out.reshape(y.shape).to(y.dtype)


class DenoisingComparison(NamedTuple):
    noise_level: float  # the schedule's sigma_t / alpha_t at the timestep used
    timestep: int
    mse_prior: float
    mse_linear: float
    paired_z: float  # mean of per-image (prior - linear) MSE differences over its standard error (< 0: prior wins)
    mse_reference: float = float("nan")  # a second prior's MSE on the same noisy images (``reference=``)
    z_vs_reference: float = float("nan")  # paired z of (prior - reference) per-image MSEs (< 0: prior wins)


@torch.no_grad()
def compare_denoisers(prior: ScorePrior, linear: LinearDenoiser, images: torch.Tensor, noise_levels,
                      *, generator: torch.Generator, batch_size: int = 64,
                      reference: ScorePrior | None = None) -> list[DenoisingComparison]:
    """MSE of the prior's denoiser vs the linear one on ``images`` at each target noise level.

    For each level the timestep whose ``sigma_t/alpha_t`` is nearest is used, with that exact level for both:
    ``y = x0 + s n``, the prior denoises ``x_t = alpha_t y`` at ``t``, the linear denoiser ``y`` at ``s``.
    ``reference`` (a second prior on the same schedule, e.g. the weights a fine-tune started from) denoises the
    same ``y``: its MSE and the paired z of the two priors' per-image MSEs fill the last two fields.
    """

    if reference is not None and not torch.equal(reference.schedule.noise_level(torch.arange(
            reference.schedule.num_steps)), prior.schedule.noise_level(torch.arange(prior.schedule.num_steps))):
        raise ValueError(f"reference must use the prior's schedule (its noise levels); got {reference.schedule.name!r} "
                         f"with {reference.schedule.num_steps} steps against {prior.schedule.name!r} with "
                         f"{prior.schedule.num_steps}")

    def per_image_mse(estimate):
        return ((estimate - images) ** 2).reshape(len(images), -1).mean(1).double()

    def errors(model, y, t, alpha):
        return per_image_mse(torch.cat([model.denoise(alpha * chunk, t) for chunk in y.split(batch_size)]))

    def paired_z(diff):
        return float(diff.mean() / (diff.std() / len(diff) ** 0.5))

    out = []
    for level in noise_levels:
        t = prior.schedule.timestep_for_noise_level(float(level))
        s, alpha = float(prior.schedule.noise_level(t)), float(prior.schedule.alpha[t])
        y = images + s * torch.randn(images.shape, generator=generator, dtype=images.dtype)
        err_prior = errors(prior, y, t, alpha)
        err_linear = per_image_mse(linear_denoise(linear, y, s))
        row = DenoisingComparison(s, t, float(err_prior.mean()), float(err_linear.mean()),
                                  paired_z(err_prior - err_linear))
        if reference is not None:
            err_reference = errors(reference, y, t, alpha)
            row = row._replace(mse_reference=float(err_reference.mean()),
                               z_vs_reference=paired_z(err_prior - err_reference))
        out.append(row)
    return out


class ImageStatistics(NamedTuple):
    background_fraction: float  # fraction of pixels below BACKGROUND_LEVEL
    lesion_rate: float  # fraction of images where the lesion detector fires
    mean: float  # mean pixel value
    std: float  # std of pixel values


def lesion_scores(images: torch.Tensor) -> np.ndarray:
    """Per image, the largest ``|x - median_5x5(x)|`` (a small-blob detector's score)."""
    x = images.detach().cpu().double().numpy().reshape(-1, *images.shape[-2:])
    resid = np.abs(x - ndimage.median_filter(x, size=(1, 5, 5)))
    return resid.reshape(images.shape[0], -1).max(1)


def image_statistics(images: torch.Tensor) -> ImageStatistics:
    """The statistics of the module docstring for ``images: (N, 1, H, W)``."""
    x = images.detach().cpu().double()
    return ImageStatistics(float((x < BACKGROUND_LEVEL).double().mean()),
                           float((lesion_scores(images) > LESION_THRESHOLD).mean()), float(x.mean()), float(x.std()))


def pixel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """1-Wasserstein distance between the pooled pixel values of two image sets (``scipy.stats``)."""
    return float(stats.wasserstein_distance(a.detach().cpu().double().reshape(-1).numpy(),
                                            b.detach().cpu().double().reshape(-1).numpy()))
