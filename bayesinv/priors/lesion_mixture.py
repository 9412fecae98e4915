r"""An exact image prior with lesions: a stationary Gaussian background plus at most one lesion.

``x0 = mu + delta_j + b`` with ``b ~ N(0, Sigma)``, ``Sigma = F^H diag(p) F`` circulant (``F`` the unitary
2-D DFT, ``p`` a power spectrum), and the lesion ``j`` drawn from: none (``delta_0 = 0``, weight
``1 - lesion_weight``) or one of ``L`` lesion offsets ``delta_j`` (a soft disc of given radius and signed
contrast at one of ``K`` locations, both signs, so ``L = 2K``; equal weights ``lesion_weight / L``).
That is a Gaussian mixture whose components share one circulant covariance, so for the VP forward process
``x_t = alpha_t x0 + sigma_t eps`` everything is exact and costs ``O(L d + d log d)``:

* the noisy marginal is ``sum_j w_j N(x_t; alpha m_j, C_t)`` with ``C_t = F^H diag(alpha^2 p + sigma^2) F``;
  with ``u = x_t - alpha mu`` and ``v = C_t^{-1} u`` the component log-joints are
  ``log w_j + alpha <delta_j, v> - alpha^2/2 <delta_j, C_t^{-1} delta_j>`` up to a shared term (the inner
  products are taken in Fourier, against the precomputed ``F delta_j``: one FFT of ``u``);
* since the covariance is shared, the denoiser is one linear filter of the responsibility-weighted mean
  ``mbar = sum_j r_j m_j``: ``E[x0 | x_t] = mbar + F^H diag(alpha p / (alpha^2 p + sigma^2)) F (x_t - alpha mbar)``
  (one more FFT, since ``F (x_t - alpha mbar) = F u - alpha sum_j r_j F delta_j``). Both are real FFTs over the
  half spectrum (``p`` is symmetric).
* the score follows by Tweedie's formula (:class:`~bayesinv.priors.base.ScorePrior`).

The exact posterior under a linear-Gaussian likelihood is in :mod:`bayesinv.priors.lesion_posterior`
(re-exported by :mod:`bayesinv.priors.exact`). :meth:`LesionMixturePrior.from_phantoms` fits ``mu`` and ``p``
to the training phantoms (:func:`fit_stationary_background`; the settings are kept in ``fit_info``).

>>> import torch
>>> prior = LesionMixturePrior.from_phantoms(16, num_phantoms=200, num_locations=4)
>>> prior.num_components, tuple(prior.event_shape)
(9, (1, 16, 16))
>>> x = prior.sample_n(3, generator=torch.Generator().manual_seed(0))
>>> prior.lesion_probability(x).shape
torch.Size([3])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from pyro.distributions import constraints

from bayesinv._validation import check_finite, check_tensor
from bayesinv.errors import ShapeError
from bayesinv.priors.base import ScorePrior
from bayesinv.priors.gaussian import (_LOG_2PI, StationaryGaussianPrior, as_event_batch, batch_coefficients,
                                     half_spectrum_weights, prior_components)
from bayesinv.priors.schedules import Schedule, vp_linear

__all__ = ["LesionMixturePrior", "StationaryFit", "fit_stationary_background", "lesion_offsets", "grid_locations"]


class StationaryFit(NamedTuple):
    """A fitted stationary background: ``mean`` and ``power_spectrum`` ``(1, H, W)`` and how they were fitted."""

    mean: torch.Tensor
    power_spectrum: torch.Tensor
    info: dict


def fit_stationary_background(size: int = 32, *, num_phantoms: int = 2000, seed: int = 0,
                              nugget: float = 1e-4) -> StationaryFit:
    r"""Fit the mean image and a circulant covariance to lesion-free training phantoms.

    ``mean = (1/N) sum_n x_n`` and ``p(k) = (1/N) sum_n |F (x_n - mean)|^2(k) + nugget`` over ``N =
    num_phantoms`` images of :func:`bayesinv.data.phantom_dataset` ``("train", N, size, seed=seed,
    lesion_prob=0)``: the maximum-likelihood stationary (circulant) covariance of the residuals, made
    strictly positive by ``nugget``. ``p`` is symmetrised (``p[k] = p[-k]``) so that samples are real.
    """
    from bayesinv.data import phantom_dataset

    if int(size) < 4 or int(num_phantoms) < 2 or not nugget > 0:
        raise ValueError(f"need size >= 4, num_phantoms >= 2 and nugget > 0; got {size}, {num_phantoms}, {nugget}")
    images = phantom_dataset("train", int(num_phantoms), int(size), seed=int(seed), lesion_prob=0.0).images.double()
    mean = images.mean(0)
    power = (torch.fft.fft2(images - mean, norm="ortho").abs() ** 2).mean(0)
    power = 0.5 * (power + torch.roll(torch.flip(power, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))) + nugget
    info = {"source": "phantom_dataset('train', lesion_prob=0)", "size": int(size), "num_phantoms": int(num_phantoms),
            "seed": int(seed), "nugget": float(nugget)}
    return StationaryFit(mean, power, info)


def grid_locations(size: int, num_locations: int) -> torch.Tensor:
    """``num_locations`` (a square number) lesion centres ``(K, 2)`` (row, col) on a grid over the central 45%."""
    side = math.isqrt(int(num_locations))
    if side * side != int(num_locations) or side < 1:
        raise ValueError(f"num_locations must be a positive square number, got {num_locations}")
    if side == 1:
        axis = torch.tensor([(size - 1) / 2], dtype=torch.float64, device="cpu")
    else:
        axis = torch.linspace(0.275 * (size - 1), 0.725 * (size - 1), side, dtype=torch.float64, device="cpu").round()
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([rows.reshape(-1), cols.reshape(-1)], 1)


def lesion_offsets(size: int, locations: torch.Tensor, *, radius: float, contrast: float,
                   edge: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Soft-disc lesions ``contrast * sigmoid((radius - r) / edge)`` at ``locations`` (wrap-around distance).

    Returns the offsets ``(K, 1, size, size)`` and the lesion masks ``r <= radius`` (bool, same shape).
    The disc profile is the one :func:`bayesinv.data.phantoms.insert_lesions` uses.
    """
    if not (radius > 0 and edge > 0):
        raise ValueError(f"radius and edge must be positive, got {radius}, {edge}")
    locations = torch.as_tensor(locations, dtype=torch.float64)
    if locations.ndim != 2 or locations.shape[1] != 2:
        raise ShapeError(f"locations must have shape (K, 2), got {tuple(locations.shape)}")
    grid = torch.arange(size, dtype=torch.float64, device=locations.device)
    dr = (grid[None, :, None] - locations[:, 0, None, None]).remainder(size)
    dc = (grid[None, None, :] - locations[:, 1, None, None]).remainder(size)
    dist = torch.sqrt(torch.minimum(dr, size - dr) ** 2 + torch.minimum(dc, size - dc) ** 2)
    disc = torch.sigmoid((radius - dist) / edge)
    return (contrast * disc)[:, None], (dist <= radius)[:, None]


class LesionMixturePrior(ScorePrior):
    r"""Stationary Gaussian background plus at most one lesion: exact denoiser, score and densities.

    Parameters
    ----------
    power_spectrum : ``(1, H, W)`` (or ``(H, W)``) strictly positive, symmetric power spectrum ``p``.
    mean : background mean image ``(1, H, W)`` or a scalar.
    offsets : ``(L, 1, H, W)`` lesion offsets ``delta_j`` (``j = 1..L``).
    lesion_weight : total prior probability of a lesion (split equally over the ``L`` offsets).
    masks : optional ``(L, 1, H, W)`` bool lesion supports (for lesion-pixel statistics).
    location_index : optional ``(L,)`` location of each offset (``0..K-1``); default ``0..L-1``.
    schedule : the diffusion schedule (default :func:`~bayesinv.priors.schedules.vp_linear`).

    Component 0 is "no lesion"; component ``j >= 1`` adds ``offsets[j-1]``.
    """

    support = constraints.real_vector
    _tensor_attributes = ("offsets", "masks", "location_index", "weights", "_offset_spectrum", "_offset_inner",
                          "_offset_power", "_half_weights", "locations")

    def __init__(self, power_spectrum: torch.Tensor, mean, offsets: torch.Tensor, *, lesion_weight: float = 0.5,
                 masks: torch.Tensor | None = None, location_index: torch.Tensor | None = None,
                 schedule: Schedule | None = None, validate_args=None):
        self.background = StationaryGaussianPrior(power_spectrum, mean, schedule=schedule)
        p = self.background.power_spectrum
        if p.shape[0] != 1:
            raise ShapeError(f"LesionMixturePrior is single-channel; power_spectrum has {p.shape[0]} channels")
        if bool((p <= 0).any()):
            raise ValueError("power_spectrum must be strictly positive (add a nugget)")
        check_tensor("offsets", offsets)
        offsets = check_finite("offsets", offsets.to(torch.float64))
        if offsets.ndim != 4 or tuple(offsets.shape[1:]) != tuple(p.shape) or offsets.shape[0] < 1:
            raise ShapeError(f"offsets must have shape (L, {', '.join(map(str, p.shape))}), got {tuple(offsets.shape)}")
        if not 0 < lesion_weight < 1:
            raise ValueError(f"lesion_weight must be in (0, 1), got {lesion_weight}")
        num = offsets.shape[0]
        self.offsets = offsets.reshape(num, -1).clone()  # (L, d)
        self.masks = None if masks is None else masks.reshape(num, *p.shape).bool().clone()
        self.location_index = torch.arange(num, device=offsets.device) if location_index is None else \
            torch.as_tensor(location_index, device=offsets.device).long()
        if self.location_index.shape != (num,):
            raise ShapeError(f"location_index must have shape ({num},), got {tuple(self.location_index.shape)}")
        self.weights = torch.cat([torch.tensor([1 - lesion_weight], dtype=torch.float64, device=offsets.device),
                                  torch.full((num,), lesion_weight / num, dtype=torch.float64, device=offsets.device)])
        self.lesion_weight = float(lesion_weight)
        # the offsets on the rfft2 half spectrum: F delta_j as (re, im) pairs, and with the Parseval weights
        # (inner products over the full spectrum are weighted sums over the half) F delta_j and |F delta_j|^2
        spectrum = torch.fft.rfft2(offsets, norm="ortho")
        weights = half_spectrum_weights(p.shape[-1], device=offsets.device)
        self._offset_spectrum = torch.view_as_real(spectrum).reshape(num, -1)
        self._offset_inner = torch.view_as_real(weights * spectrum).reshape(num, -1)
        self._offset_power = (weights * spectrum.abs() ** 2).reshape(num, -1)
        self._half_weights = weights
        self.fit_info: dict = {}
        super().__init__(p.shape, self.background.schedule, validate_args=validate_args)

    @classmethod
    def from_phantoms(cls, size: int = 32, *, num_phantoms: int = 2000, seed: int = 0, num_locations: int = 16,
                      radius: float = 1.5, contrast: float = 0.35, lesion_weight: float = 0.5, nugget: float = 1e-4,
                      schedule: Schedule | None = None) -> LesionMixturePrior:
        """Background fitted by :func:`fit_stationary_background`; ``num_locations`` lesion sites from
        :func:`grid_locations`, each bright (``+contrast``) or dark (``-contrast``): ``2 * num_locations`` lesions."""
        fit = fit_stationary_background(size, num_phantoms=num_phantoms, seed=seed, nugget=nugget)
        locations = grid_locations(size, num_locations)
        bump, masks = lesion_offsets(size, locations, radius=radius, contrast=contrast)
        prior = cls(fit.power_spectrum, fit.mean, torch.cat([bump, -bump]), lesion_weight=lesion_weight,
                    masks=torch.cat([masks, masks]), location_index=torch.arange(2 * len(locations)) % len(locations),
                    schedule=schedule)
        prior.fit_info = {**fit.info, "num_locations": int(num_locations), "radius": float(radius),
                          "contrast": float(contrast), "lesion_weight": float(lesion_weight)}
        prior.locations = locations
        return prior

    def to(self, device: str | torch.device) -> LesionMixturePrior:
        """Move the lesion tensors and the background prior to ``device`` (in place) and return the prior."""
        self.background.to(device)
        return super().to(device)

    # -- description ------------------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return self.weights.shape[0]

    @property
    def num_locations(self) -> int:
        return int(self.location_index.max()) + 1

    @property
    def dim(self) -> int:
        return self.offsets.shape[1]

    @property
    def power_spectrum(self) -> torch.Tensor:
        return self.background.power_spectrum

    @property
    def background_mean(self) -> torch.Tensor:
        return self.background.mean

    @property
    def means(self) -> torch.Tensor:
        """Component means ``(J, d)``, ``J = L + 1`` (row 0: no lesion)."""
        mu = self.background.mean_vector
        return torch.cat([mu[None], mu + self.offsets])

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """The shared dense covariance ``(d, d)`` (``d <= 4096``)."""
        return self.background.covariance_matrix

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights @ self.means).reshape(self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        means = self.means
        spread = self.weights @ means**2 - (self.weights @ means) ** 2
        return self.background.variance + spread.reshape(self.event_shape)

    # -- exact noisy quantities ---------------------------------------------------------------------
    def _parts(self, xf: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, with_shared: bool = True):
        """Log-joints ``(B, J)`` up to the shared term, the shared term ``(B,)`` (``None`` unless
        ``with_shared``), the noisy variance and ``F u`` (``u = x_t - alpha mu``), both on the ``rfft2`` half
        spectrum (the variance ``(1, 1, H, W // 2 + 1)`` when all ``B`` share one timestep)."""
        b = xf.shape[0]
        shape = (b, *self.event_shape)
        if b > 1 and alpha.stride(0) == 0 and sigma.stride(0) == 0:
            # one timestep for the batch (``batch_coefficients`` of an int ``t`` expands one value; read from the
            # strides, not the values, so nothing syncs with the device): one variance image, one (1, L) term
            alpha, sigma = alpha[:1], sigma[:1]
        a4 = alpha.reshape(-1, 1, 1, 1)
        var = a4**2 * self.background.half_power_spectrum + sigma.reshape(-1, 1, 1, 1) ** 2
        coef = torch.fft.rfft2(xf.reshape(shape) - a4 * self.background.mean, norm="ortho")
        scaled = torch.view_as_real(coef / var).reshape(b, -1)  # F C_t^{-1} u
        a = alpha[:, None]
        lesion = a * (scaled @ self._offset_inner.T) \
            - 0.5 * a**2 * ((1 / var).reshape(var.shape[0], -1) @ self._offset_power.T)
        none = torch.zeros(b, 1, dtype=torch.float64, device=xf.device)
        log_joint = self.weights.log() + torch.cat([none, lesion], 1)
        if not with_shared:
            return log_joint, None, var, coef
        w = self._half_weights
        shared = -0.5 * ((w * coef.abs() ** 2 / var).reshape(b, -1).sum(1)
                         + (w * var.log()).reshape(var.shape[0], -1).sum(1) + self.dim * _LOG_2PI)
        return log_joint, shared, var, coef

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        # E[x0 | x_t] = mbar + F^H diag(alpha p / var) (F u - alpha F(mbar - mu)), mbar - mu = sum_j r_j delta_j
        xf = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        alpha, sigma = batch_coefficients(self.schedule, t, xf.shape[0], xf.device)
        log_joint, _, var, coef = self._parts(xf, alpha, sigma, with_shared=False)
        resp = torch.softmax(log_joint, 1)[:, 1:]
        lesion = torch.view_as_complex((resp @ self._offset_spectrum).reshape(*coef.shape, 2))
        a = alpha.reshape(-1, 1, 1, 1)
        gain = a * self.background.half_power_spectrum / var
        mbar = (self.background.mean_vector + resp @ self.offsets).reshape(-1, *self.event_shape)
        out = mbar + torch.fft.irfft2(gain * (coef - a * lesion), s=self.event_shape[-2:], norm="ortho")
        return out.reshape(x_t.shape).to(x_t.dtype)

    def responsibilities(self, x_t: torch.Tensor, t=None) -> torch.Tensor:
        """``p(j | x_t)`` ``(B, J)``; ``t=None`` is the clean image (``p(j | x0)``)."""
        xf, _ = as_event_batch("x_t", x_t, self.event_shape)
        return torch.softmax(self._log_joint_at(xf, t)[0], 1)

    def _log_joint_at(self, xf: torch.Tensor, t):
        if t is None:
            ones = torch.ones(xf.shape[0], dtype=torch.float64, device=xf.device)
            return self._parts(xf, ones, torch.zeros_like(ones))
        return self._parts(xf, *batch_coefficients(self.schedule, t, xf.shape[0], xf.device))

    def lesion_probability(self, x: torch.Tensor, t=None) -> torch.Tensor:
        """``P(any lesion | x)`` per image ``(B,)`` (``t=None``: clean images; else given ``x_t``).

        Averaged over exact posterior draws it is an unbiased estimate of ``P(lesion | y)`` (``y`` depends on
        the lesion only through ``x``), which is how sampler draws are scored.
        """
        return 1 - self.responsibilities(x, t)[:, 0]

    def location_probabilities(self, x: torch.Tensor, t=None) -> torch.Tensor:
        """``P(lesion at location k | x)`` ``(B, K)`` (both signs summed)."""
        resp = self.responsibilities(x, t)[:, 1:]
        out = torch.zeros(resp.shape[0], self.num_locations, dtype=torch.float64, device=resp.device)
        return out.index_add_(1, self.location_index, resp)

    def noisy_log_prob(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Exact ``log p_t(x_t)`` per sample ``(B,)``."""
        xf, _ = as_event_batch("x_t", x_t, self.event_shape)
        log_joint, shared, *_ = self._log_joint_at(xf, t)
        return torch.logsumexp(log_joint, 1) + shared

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact mixture log-density of clean images over the event dims."""
        xf, batch = as_event_batch("value", value, self.event_shape)
        log_joint, shared, *_ = self._log_joint_at(xf, None)
        return (torch.logsumexp(log_joint, 1) + shared).reshape(batch)

    # -- sampling -------------------------------------------------------------------------------------
    def sample_components(self, n: int, *, generator: torch.Generator | None = None,
                          dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws and their component indices ``(n,)`` (0 = no lesion)."""
        n = int(n)
        device = self.device
        comp = prior_components(self.weights, n, generator)
        background = self.background.sample_n(n, generator=generator)
        means = torch.cat([torch.zeros(1, self.dim, dtype=torch.float64, device=device), self.offsets])[comp]
        return (background + means.reshape(n, *self.event_shape)).to(dtype), comp

    def sample_n(self, n: int, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` independent draws ``(n, 1, H, W)``."""
        return self.sample_components(n, generator=generator, dtype=dtype)[0]

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        return self.sample_n(shape.numel()).reshape(shape + self.event_shape)

    def __repr__(self) -> str:
        return (f"LesionMixturePrior(num_components={self.num_components}, event_shape={tuple(self.event_shape)}, "
                f"schedule={self.schedule.name!r})")
