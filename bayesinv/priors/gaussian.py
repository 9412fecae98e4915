"""Gaussian priors with exact noisy scores: dense (small ``d``) and stationary (circulant, for images).

For ``x0 ~ N(mu, Sigma)`` and the forward process ``x_t = alpha_t x0 + sigma_t eps`` the noisy marginal
is Gaussian, ``x_t ~ N(alpha_t mu, alpha_t^2 Sigma + sigma_t^2 I)``, and the MMSE denoiser is linear:

    E[x0 | x_t] = mu + alpha_t Sigma (alpha_t^2 Sigma + sigma_t^2 I)^{-1} (x_t - alpha_t mu).

With ``Sigma = Q diag(lambda) Q^T`` every noise level costs two products with ``Q`` (for a stationary
covariance ``Q`` is the unitary 2-D DFT and ``lambda`` the power spectrum). The score follows by
Tweedie's formula in :class:`~bayesinv.priors.base.ScorePrior`, so it is exact; these priors are the
ground truth that every sampler is tested against (with :func:`bayesinv.priors.exact.exact_posterior`).

>>> import torch
>>> prior = GaussianPrior(torch.zeros(2), torch.eye(2))
>>> x_t = torch.ones(1, 2, dtype=torch.float64)
>>> bool(torch.allclose(prior.denoise(x_t, 0), x_t * prior.schedule.alpha[0]))  # Sigma = I, alpha^2+sigma^2 = 1
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pyro.distributions import constraints

from bayesinv._validation import check_finite, check_tensor
from bayesinv.errors import ShapeError
from bayesinv.priors.base import ScorePrior
from bayesinv.priors.schedules import Schedule, standard_normal, vp_linear

__all__ = ["GaussianPrior", "StationaryGaussianPrior"]

_LOG_2PI = math.log(2 * math.pi)


def batch_coefficients(schedule: Schedule, t, batch: int,
                       device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha_t, sigma_t)`` as float64 tensors of shape ``(batch,)`` on ``device`` (default: the CPU; ``t`` an
    int or ``(batch,)``)."""
    like = torch.zeros(batch, 1, dtype=torch.float64, device=device if device is not None else "cpu")
    alpha, sigma = schedule.coefficients(t, like)
    return alpha.reshape(-1).expand(batch), sigma.reshape(-1).expand(batch)


def half_spectrum_weights(width: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Parseval weights over the columns of an ``rfft2`` half spectrum ``(width // 2 + 1,)``: 1 for the columns
    that are their own mirror (0, and ``width / 2`` when ``width`` is even), 2 for the others, so that
    ``sum_full f(k) = sum_half weights * f(k)`` for every symmetric ``f`` (``f[k] = f[-k]``)."""
    weights = torch.full((width // 2 + 1,), 2.0, dtype=dtype, device=device)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return weights


def gaussian_log_density(coef: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``log N(r; 0, Q diag(var) Q^T)`` from the rotated residual ``coef = Q^T r``; sums the last dim."""
    d = coef.shape[-1]
    return -0.5 * ((coef**2 / var).sum(-1) + var.log().sum(-1) + d * _LOG_2PI)


def as_event_batch(name: str, x: torch.Tensor, event_shape: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Flatten ``x: (*batch, *event_shape)`` to ``(N, d)`` float64; returns it and the batch shape."""
    check_tensor(name, x)
    k = len(event_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != tuple(event_shape):
        raise ShapeError(f"{name} must have shape (..., {', '.join(map(str, event_shape))}), got {tuple(x.shape)}")
    check_finite(name, x)
    batch = tuple(x.shape[: x.ndim - k])
    return x.reshape(-1, math.prod(event_shape)).to(torch.float64), batch


def prior_normal(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float64 ``N(0, I)`` draws for an analytic prior on ``device``: from ``generator`` on its own device and then
    moved (a CPU generator gives the same numbers on every device), or from the global stream on ``device``."""
    if generator is None:
        return torch.randn(tuple(shape), dtype=torch.float64, device=device)
    return standard_normal(shape, generator, torch.empty(0, dtype=torch.float64, device=device))


def prior_components(weights: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` component indices ``~ Categorical(weights)`` (long, on the weights' device): drawn from ``generator``
    on its own device and moved, like :func:`prior_normal`, so a CPU generator gives the same draws everywhere."""
    if not n:
        return torch.zeros(0, dtype=torch.long, device=weights.device)
    on_generator = weights.to(generator.device) if generator is not None else weights
    return torch.multinomial(on_generator, n, replacement=True, generator=generator).to(weights.device)


def symmetric_eigh(name: str, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decompose a symmetric PSD ``(..., d, d)`` matrix; tiny negative eigenvalues are clipped to 0."""
    check_finite(name, cov)
    scale = cov.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
    if not bool(((cov - cov.transpose(-1, -2)).abs() <= 1e-10 * scale).all()):
        raise ValueError(f"{name} must be symmetric")
    lam, vecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
    tol = 1e-10 * scale.squeeze(-1)
    if bool((lam < -tol).any()):
        raise ValueError(f"{name} must be positive semi-definite; smallest eigenvalue {float(lam.min()):.3g}")
    return lam.clamp_min(0.0), vecs


class GaussianPrior(ScorePrior):
    r"""A Gaussian prior ``x0 ~ N(mean, cov)`` with exact denoiser, score and noisy marginals.

    Parameters
    ----------
    mean : ``(d,)`` or event-shaped tensor (a scalar broadcasts when ``event_shape`` is given).
    cov : ``(d, d)`` symmetric PSD matrix, ``(d,)`` variances (diagonal) or a scalar variance.
    schedule : the diffusion schedule (default :func:`~bayesinv.priors.schedules.vp_linear`).
    event_shape : the sample shape, e.g. ``(1, 4, 4)``; default ``mean.shape``.

    Notes
    -----
    ``denoise(x_t, t) = mu + Q diag(alpha lambda / (alpha^2 lambda + sigma^2)) Q^T (x_t - alpha mu)``
    with ``cov = Q diag(lambda) Q^T`` (exact posterior mean of ``x0`` given ``x_t``). A singular ``cov``
    is allowed for denoising and sampling; :meth:`log_prob` then raises.

    >>> import torch
    >>> prior = GaussianPrior(torch.zeros(3), 2.0)
    >>> prior.sample_n(5, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([5, 3])
    """

    support = constraints.real_vector
    _tensor_attributes = ("mean_vector", "covariance_matrix", "_eigvals", "_eigvecs")

    def __init__(self, mean, cov, *, schedule: Schedule | None = None, event_shape: Sequence[int] | None = None,
                 validate_args=None):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        device = mean.device  # the prior lives where its mean does (move it with .to)
        event_shape = tuple(mean.shape) if event_shape is None else tuple(int(s) for s in event_shape)
        if not event_shape:
            raise ShapeError("GaussianPrior needs a non-scalar mean or an explicit event_shape")
        d = math.prod(event_shape)
        if mean.numel() == 1:
            mean = mean.reshape(()).expand(d)
        if mean.numel() != d:
            raise ShapeError(f"mean must have {d} elements for event_shape {event_shape}, "
                             f"got shape {tuple(mean.shape)}")
        self.mean_vector = check_finite("mean", mean.reshape(d).clone())
        cov = torch.as_tensor(cov, dtype=torch.float64, device=device)
        if cov.ndim == 0:
            cov = cov * torch.eye(d, dtype=torch.float64, device=device)
        elif cov.ndim == 1:
            if cov.shape[0] != d:
                raise ShapeError(f"cov as variances must have shape ({d},), got {tuple(cov.shape)}")
            cov = torch.diag(cov)
        if tuple(cov.shape) != (d, d):
            raise ShapeError(f"cov must have shape ({d}, {d}), ({d},) or be a scalar, got {tuple(cov.shape)}")
        self.covariance_matrix = cov.clone()
        self._eigvals, self._eigvecs = symmetric_eigh("cov", cov)
        super().__init__(event_shape, schedule if schedule is not None else vp_linear(), validate_args=validate_args)

    @property
    def dim(self) -> int:
        return self.mean_vector.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        return self.mean_vector.reshape(self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return torch.diagonal(self.covariance_matrix).reshape(self.event_shape)

    # -- exact noisy quantities -----------------------------------------------------------------
    def _rotated(self, xf: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return (xf - alpha[:, None] * self.mean_vector) @ self._eigvecs

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        xf = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        alpha, sigma = batch_coefficients(self.schedule, t, xf.shape[0], xf.device)
        lam = self._eigvals
        gain = alpha[:, None] * lam / (alpha[:, None] ** 2 * lam + sigma[:, None] ** 2)
        out = self.mean_vector + (gain * self._rotated(xf, alpha)) @ self._eigvecs.T
        return out.reshape(x_t.shape).to(x_t.dtype)

    def noisy_log_prob(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Exact ``log p_t(x_t)`` of ``N(alpha_t mu, alpha_t^2 Sigma + sigma_t^2 I)`` per sample, ``(B,)``."""
        xf, _ = as_event_batch("x_t", x_t, self.event_shape)
        alpha, sigma = batch_coefficients(self.schedule, t, xf.shape[0], xf.device)
        var = alpha[:, None] ** 2 * self._eigvals + sigma[:, None] ** 2
        return gaussian_log_density(self._rotated(xf, alpha), var)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact ``log N(value; mu, Sigma)`` over the event dims (raises if ``Sigma`` is singular)."""
        xf, batch = as_event_batch("value", value, self.event_shape)
        if bool((self._eigvals <= 0).any()):
            raise ValueError("log_prob needs a positive-definite covariance; this one is singular")
        ones = torch.ones(xf.shape[0], dtype=torch.float64, device=xf.device)
        return gaussian_log_density(self._rotated(xf, ones), self._eigvals.expand_as(xf)).reshape(batch)

    # -- sampling ---------------------------------------------------------------------------------
    def sample_n(self, n: int, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` independent draws ``mu + Q diag(sqrt(lambda)) z``, ``z ~ N(0, I)``: ``(n, *event_shape)``, on the
        prior's device."""
        z = prior_normal((int(n), self.dim), generator, self.device)
        x = self.mean_vector + (z * self._eigvals.sqrt()) @ self._eigvecs.T
        return x.reshape(int(n), *self.event_shape).to(dtype)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        return self.sample_n(shape.numel()).reshape(shape + self.event_shape)

    def __repr__(self) -> str:
        return f"GaussianPrior(event_shape={tuple(self.event_shape)}, schedule={self.schedule.name!r})"


class StationaryGaussianPrior(ScorePrior):
    r"""A stationary (periodic) Gaussian image prior: covariance diagonal in the 2-D Fourier basis.

    ``x0 = mean + F^H diag(sqrt(p)) F z`` with ``F`` the unitary 2-D DFT over ``(H, W)`` (per channel),
    so ``Cov(x0) = F^H diag(p) F`` is circulant (block-diagonal over channels). ``p`` (the power spectrum,
    shape ``(C, H, W)``) must be non-negative and symmetric, ``p[k] = p[-k]``, so that samples are real.

    All noisy quantities are exact and cost two FFTs: ``E[x0 | x_t] = mu + F^H diag(alpha p /
    (alpha^2 p + sigma^2)) F (x_t - alpha mu)`` and ``x_t ~ N(alpha mu, F^H diag(alpha^2 p + sigma^2) F)``.
    Build one from a covariance function with :meth:`squared_exponential`.

    >>> prior = StationaryGaussianPrior.squared_exponential((1, 8, 8), length_scale=2.0)
    >>> prior.sample_n(2, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 1, 8, 8])
    """

    support = constraints.real_vector
    _tensor_attributes = ("power_spectrum", "_mean")

    def __init__(self, power_spectrum: torch.Tensor, mean=0.0, *, schedule: Schedule | None = None,
                 validate_args=None):
        check_tensor("power_spectrum", power_spectrum)
        p = power_spectrum.to(torch.float64)
        if p.ndim == 2:
            p = p[None]
        if p.ndim != 3:
            raise ShapeError(f"power_spectrum must have shape (C, H, W) or (H, W), got {tuple(power_spectrum.shape)}")
        check_finite("power_spectrum", p)
        if bool((p < 0).any()):
            raise ValueError(f"power_spectrum must be non-negative; its minimum is {float(p.min()):.3g}")
        mirrored = torch.roll(torch.flip(p, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))  # p[-k]
        if not torch.allclose(p, mirrored, rtol=1e-8, atol=1e-12 * float(p.max())):
            raise ValueError("power_spectrum must be symmetric, p[k] = p[-k], for the prior to be real")
        self.power_spectrum = 0.5 * (p + mirrored)  # symmetric to the last bit: the half spectrum is all of it
        mean = torch.as_tensor(mean, dtype=torch.float64, device=p.device)
        self._mean = check_finite("mean", mean.expand(p.shape).clone())
        super().__init__(p.shape, schedule if schedule is not None else vp_linear(), validate_args=validate_args)

    @classmethod
    def squared_exponential(cls, shape: Sequence[int], *, length_scale: float, variance: float = 1.0,
                            mean=0.0, nugget: float = 1e-4,
                            schedule: Schedule | None = None) -> StationaryGaussianPrior:
        """Periodic squared-exponential covariance ``variance * exp(-r^2 / (2 l^2)) + nugget * delta``.

        ``r`` is the wrap-around pixel distance; the eigenvalues of the circulant covariance are the
        DFT of its first row, clipped at zero (the periodised kernel can be slightly indefinite), plus
        ``nugget``.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or not (length_scale > 0 and variance > 0 and nugget >= 0):
            raise ValueError(f"need shape (C, H, W), length_scale > 0, variance > 0, nugget >= 0; got {shape}, "
                             f"{length_scale}, {variance}, {nugget}")
        _, h, w = shape
        dh = torch.arange(h, dtype=torch.float64, device="cpu")
        dw = torch.arange(w, dtype=torch.float64, device="cpu")
        dh, dw = torch.minimum(dh, h - dh), torch.minimum(dw, w - dw)
        row = variance * torch.exp(-(dh[:, None] ** 2 + dw[None, :] ** 2) / (2 * length_scale**2))
        p = torch.fft.fft2(row).real.clamp_min(0.0) + nugget
        p = 0.5 * (p + torch.roll(torch.flip(p, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1)))
        return cls(p.expand(shape).clone(), mean, schedule=schedule)

    @property
    def dim(self) -> int:
        return self.power_spectrum.numel()

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    @property
    def mean_vector(self) -> torch.Tensor:
        return self._mean.reshape(-1)

    @property
    def variance(self) -> torch.Tensor:
        h, w = self.event_shape[-2:]
        return (self.power_spectrum.sum((-2, -1)) / (h * w))[:, None, None].expand(self.event_shape)

    @property
    def half_power_spectrum(self) -> torch.Tensor:
        """``p`` on the ``rfft2`` half spectrum ``(C, H, W // 2 + 1)`` (``p`` is symmetric, so this is all of it)."""
        return self.power_spectrum[..., : self.event_shape[-1] // 2 + 1]

    def apply_filter(self, x: torch.Tensor, gain) -> torch.Tensor:
        """``F^H diag(gain) F x`` for real ``x: (B, C, H, W)``; ``gain`` symmetric (``gain[k] = gain[-k]``), a
        scalar or broadcastable to ``(C, H, W)`` or to the half spectrum ``(C, H, W // 2 + 1)``.

        Real FFTs over the half spectrum: a symmetric gain keeps ``F x`` Hermitian, so nothing is lost.
        """
        h, w = x.shape[-2:]
        gain = torch.as_tensor(gain, dtype=torch.float64, device=x.device)
        if gain.ndim >= 1 and gain.shape[-1] == w:
            gain = gain[..., : w // 2 + 1]
        return torch.fft.irfft2(gain * torch.fft.rfft2(x, norm="ortho"), s=(h, w), norm="ortho")

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """The dense ``(d, d)`` covariance (small images only, ``d <= 4096``)."""
        if self.dim > 4096:
            raise ValueError(f"covariance_matrix is dense; d={self.dim} > 4096 is too large")
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.device).reshape(self.dim, *self.event_shape)
        return self.apply_filter(eye, self.power_spectrum).reshape(self.dim, self.dim)

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        x = x_t.to(torch.float64)
        alpha, sigma = self.schedule.coefficients(t, x)
        gain = alpha * self.half_power_spectrum / (alpha**2 * self.half_power_spectrum + sigma**2)
        return (self._mean + self.apply_filter(x - alpha * self._mean, gain)).to(x_t.dtype)

    def _log_density(self, x: torch.Tensor, alpha, var: torch.Tensor) -> torch.Tensor:
        coef = torch.fft.fft2(x - alpha * self._mean, norm="ortho")
        quad = (coef.abs() ** 2 / var).reshape(x.shape[0], -1).sum(1)
        logdet = var.log().expand(x.shape).reshape(x.shape[0], -1).sum(1)
        return -0.5 * (quad + logdet + self.dim * _LOG_2PI)

    def noisy_log_prob(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Exact ``log p_t(x_t)``, ``x_t ~ N(alpha mu, F^H diag(alpha^2 p + sigma^2) F)``, per sample."""
        xf, _ = as_event_batch("x_t", x_t, self.event_shape)
        x = xf.reshape(-1, *self.event_shape)
        alpha, sigma = self.schedule.coefficients(t, x)
        return self._log_density(x, alpha, alpha**2 * self.power_spectrum + sigma**2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact ``log N(value; mu, F^H diag(p) F)`` (raises where the power spectrum has zeros)."""
        xf, batch = as_event_batch("value", value, self.event_shape)
        if bool((self.power_spectrum <= 0).any()):
            raise ValueError("log_prob needs a strictly positive power spectrum (add a nugget)")
        return self._log_density(xf.reshape(-1, *self.event_shape), 1.0, self.power_spectrum).reshape(batch)

    def sample_n(self, n: int, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` draws ``mu + F^H diag(sqrt(p)) F z`` with real white ``z``: ``(n, C, H, W)``, on the prior's
        device."""
        z = prior_normal((int(n), *self.event_shape), generator, self.device)
        return (self._mean + self.apply_filter(z, self.power_spectrum.sqrt())).to(dtype)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        return self.sample_n(shape.numel()).reshape(shape + self.event_shape)

    def __repr__(self) -> str:
        return f"StationaryGaussianPrior(event_shape={tuple(self.event_shape)}, schedule={self.schedule.name!r})"
