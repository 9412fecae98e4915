"""Gaussian-mixture priors with exact noisy scores, and the MCGdiff 25-component testbed.

For ``x0 ~ sum_k w_k N(mu_k, Sigma_k)`` and ``x_t = alpha_t x0 + sigma_t eps`` the noisy marginal is again
a mixture with inflated covariances,

    p_t(x_t) = sum_k w_k N(x_t; alpha_t mu_k, alpha_t^2 Sigma_k + sigma_t^2 I),

and the MMSE denoiser is the responsibility-weighted average of the component posterior means,

    E[x0 | x_t] = sum_k r_k(x_t) [mu_k + alpha_t Sigma_k (alpha_t^2 Sigma_k + sigma_t^2 I)^{-1} (x_t - alpha_t mu_k)],
    r_k(x_t) = w_k N_k(x_t) / sum_j w_j N_j(x_t)   (computed with log-sum-exp).

Each covariance is eigen-decomposed once, so every noise level costs ``O(K d^2)`` per sample
(``O(K d)`` when all covariances are diagonal). Isotropic components (``Sigma_k = s_k I``, as in the testbed)
never form the ``(B, K, d)`` residuals: ``||x - a mu_k||^2 = ||x||^2 - 2 a <x, mu_k> + a^2 ||mu_k||^2`` is a
matrix product, as is the denoiser's shrinkage (``benchmarks/mixture_prior.py``: 33x at d = 80).
:func:`grid_mixture` builds the benchmark of Cardoso et al. 2023, "Monte Carlo guided diffusion for Bayesian
linear inverse problems" (MCGdiff, ICLR 2024).

>>> import torch
>>> prior = GaussianMixturePrior(torch.tensor([0.5, 0.5]), torch.tensor([[-2.0], [2.0]]), 1.0)
>>> float(prior.denoise(torch.zeros(1, 1, dtype=torch.float64), 500))  # symmetric: the mean is 0
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pyro.distributions import constraints

from bayesinv._validation import check_finite
from bayesinv.errors import ShapeError
from bayesinv.priors.base import ScorePrior
from bayesinv.priors.gaussian import (_LOG_2PI, as_event_batch, batch_coefficients, gaussian_log_density,
                                     prior_components, prior_normal, symmetric_eigh)
from bayesinv.priors.schedules import Schedule, vp_linear

__all__ = ["GaussianMixturePrior", "grid_mixture"]


class GaussianMixturePrior(ScorePrior):
    r"""A Gaussian-mixture prior ``sum_k w_k N(mu_k, Sigma_k)`` with exact denoiser, score and densities.

    Parameters
    ----------
    weights : ``(K,)`` non-negative mixture weights (normalised here).
    means : ``(K, d)`` or ``(K, *event_shape)`` component means.
    covs : component covariances: a scalar (``s I`` for all), ``(K,)`` per-component variances
        (isotropic), ``(K, d)`` diagonals or ``(K, d, d)`` dense symmetric PSD matrices.
    schedule : the diffusion schedule (default :func:`~bayesinv.priors.schedules.vp_linear`).
    event_shape : the sample shape; default ``means.shape[1:]``.

    >>> import torch
    >>> prior = GaussianMixturePrior(torch.ones(3), torch.randn(3, 2, generator=torch.Generator().manual_seed(0)), 0.5)
    >>> prior.sample_n(4, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([4, 2])
    """

    support = constraints.real_vector
    _tensor_attributes = ("weights", "means", "_eigvals", "_eigvecs", "_iso_var", "_mean_sq")

    def __init__(self, weights, means, covs=1.0, *, schedule: Schedule | None = None,
                 event_shape: Sequence[int] | None = None, validate_args=None):
        weights = check_finite("weights", torch.as_tensor(weights, dtype=torch.float64))
        means = check_finite("means", torch.as_tensor(means, dtype=torch.float64, device=weights.device))
        if weights.ndim != 1 or weights.numel() == 0:
            raise ShapeError(f"weights must have shape (K,) with K >= 1, got {tuple(weights.shape)}")
        if bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        k = weights.shape[0]
        if means.ndim < 2 or means.shape[0] != k:
            raise ShapeError(f"means must have shape ({k}, d) or ({k}, *event_shape), got {tuple(means.shape)}")
        event_shape = tuple(means.shape[1:]) if event_shape is None else tuple(int(s) for s in event_shape)
        d = math.prod(event_shape)
        if means[0].numel() != d:
            raise ShapeError(f"means must have {d} elements per component for event_shape {event_shape}, "
                             f"got shape {tuple(means.shape)}")
        self.weights = weights / weights.sum()
        self.means = means.reshape(k, d).clone()
        covs = torch.as_tensor(covs, dtype=torch.float64, device=weights.device)
        self._eigvals, self._eigvecs = self._decompose(covs, k, d)
        isotropic = self._eigvecs is None and bool((self._eigvals == self._eigvals[:, :1]).all())
        self._iso_var = self._eigvals[:, 0].clone() if isotropic else None  # (K,) s_k, or None
        self._mean_sq = (self.means**2).sum(1)  # (K,)
        super().__init__(event_shape, schedule if schedule is not None else vp_linear(), validate_args=validate_args)

    @staticmethod
    def _decompose(covs: torch.Tensor, k: int, d: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Eigenvalues ``(K, d)`` and eigenvectors ``(K, d, d)`` (``None`` for diagonal covariances)."""
        check_finite("covs", covs)
        if covs.ndim == 0:
            covs = covs.expand(k, d)
        elif covs.ndim == 1:
            if covs.shape[0] != k:
                raise ShapeError(f"covs as per-component variances must have shape ({k},), got {tuple(covs.shape)}")
            covs = covs[:, None].expand(k, d)
        if covs.ndim == 2:
            if tuple(covs.shape) != (k, d):
                raise ShapeError(f"covs as diagonals must have shape ({k}, {d}), got {tuple(covs.shape)}")
            if bool((covs < 0).any()):
                raise ValueError("covs (variances) must be non-negative")
            return covs.clone(), None
        if tuple(covs.shape) != (k, d, d):
            raise ShapeError(f"covs must be a scalar, ({k},), ({k}, {d}) or ({k}, {d}, {d}); got {tuple(covs.shape)}")
        return symmetric_eigh("covs", covs)

    # -- description ------------------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def covariance_matrices(self) -> torch.Tensor:
        """Dense component covariances ``(K, d, d)``."""
        if self._eigvecs is None:
            return torch.diag_embed(self._eigvals)
        return (self._eigvecs * self._eigvals[:, None, :]) @ self._eigvecs.transpose(-1, -2)

    @property
    def component_variances(self) -> torch.Tensor:
        """Marginal variances of each component ``(K, d)``."""
        if self._eigvecs is None:
            return self._eigvals
        return (self._eigvecs**2 * self._eigvals[:, None, :]).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights @ self.means).reshape(self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        second = self.weights @ (self.component_variances + self.means**2)
        return (second - (self.weights @ self.means) ** 2).reshape(self.event_shape)

    # -- exact noisy quantities -----------------------------------------------------------------
    def _components(self, xf: torch.Tensor, t) -> tuple[torch.Tensor, ...]:
        """Per-component rotated residuals, noisy variances and log-joints ``log w_k + log N_k(x_t)``."""
        alpha, sigma = batch_coefficients(self.schedule, t, xf.shape[0], xf.device)
        return self._components_at(xf, alpha, sigma)

    def _noisy_log_joint(self, xf: torch.Tensor, t) -> torch.Tensor:
        """:meth:`_log_joint` at timestep(s) ``t``."""
        return self._log_joint(xf, *batch_coefficients(self.schedule, t, xf.shape[0], xf.device))

    def _log_joint(self, xf: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(x; alpha mu_k, alpha^2 Sigma_k + sigma^2 I)``: ``(B, K)``."""
        if self._iso_var is not None:
            return self._isotropic_parts(xf, alpha, sigma)[1]
        return self._components_at(xf, alpha, sigma)[-1]

    def _isotropic_parts(self, xf, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """Noisy variances ``(B, K)`` and log-joints ``(B, K)`` of isotropic components, by matrix products."""
        a = alpha[:, None]
        sq = ((xf**2).sum(1, keepdim=True) - 2 * a * (xf @ self.means.T) + a**2 * self._mean_sq).clamp_min(0.0)
        var = a**2 * self._iso_var + sigma[:, None] ** 2
        d = xf.shape[1]
        return var, self.weights.log() - 0.5 * (sq / var + d * var.log() + d * _LOG_2PI)

    def _components_at(self, xf, alpha, sigma):
        resid = xf[:, None, :] - alpha[:, None, None] * self.means  # (B, K, d)
        coef = resid if self._eigvecs is None else torch.einsum("bkd,kde->bke", resid, self._eigvecs)
        var = alpha[:, None, None] ** 2 * self._eigvals + sigma[:, None, None] ** 2
        log_joint = self.weights.log() + gaussian_log_density(coef, var)  # (B, K)
        return alpha, coef, var, log_joint

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        xf = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        if self._iso_var is not None:  # sum_k r_k c_k (x - a mu_k) with c_k = a s_k / (a^2 s_k + sigma^2)
            alpha, sigma = batch_coefficients(self.schedule, t, xf.shape[0], xf.device)
            var, log_joint = self._isotropic_parts(xf, alpha, sigma)
            resp = torch.softmax(log_joint, dim=1)
            weighted = resp * (alpha[:, None] * self._iso_var / var)
            out = resp @ self.means + weighted.sum(1, keepdim=True) * xf - alpha[:, None] * (weighted @ self.means)
            return out.reshape(x_t.shape).to(x_t.dtype)
        alpha, coef, var, log_joint = self._components(xf, t)
        resp = torch.softmax(log_joint, dim=1)  # (B, K)
        shrunk = resp[:, :, None] * (alpha[:, None, None] * self._eigvals / var * coef)
        if self._eigvecs is not None:
            shrunk = torch.einsum("bke,kde->bkd", shrunk, self._eigvecs)
        out = resp @ self.means + shrunk.sum(1)
        return out.reshape(x_t.shape).to(x_t.dtype)

    def responsibilities(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``p(k | x_t)`` for each component: ``(B, K)``."""
        xf, _ = as_event_batch("x_t", x_t, self.event_shape)
        return torch.softmax(self._noisy_log_joint(xf, t), dim=1)

    def noisy_log_prob(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Exact ``log p_t(x_t) = logsumexp_k [log w_k + log N(x_t; alpha mu_k, alpha^2 Sigma_k + sigma^2 I)]``."""
        xf, _ = as_event_batch("x_t", x_t, self.event_shape)
        return torch.logsumexp(self._noisy_log_joint(xf, t), dim=1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact mixture log-density over the event dims (raises if a covariance is singular)."""
        xf, batch = as_event_batch("value", value, self.event_shape)
        if bool((self._eigvals <= 0).any()):
            raise ValueError("log_prob needs positive-definite component covariances; one is singular")
        ones = torch.ones(xf.shape[0], dtype=torch.float64, device=xf.device)
        log_joint = self._log_joint(xf, ones, torch.zeros_like(ones))
        return torch.logsumexp(log_joint, dim=1).reshape(batch)

    # -- sampling ---------------------------------------------------------------------------------
    def sample_n(self, n: int, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` independent draws: ``k ~ Categorical(w)``, ``x = mu_k + Q_k diag(sqrt(lambda_k)) z``, on the prior's
        device (the component and ``z`` are drawn on the generator's device and moved)."""
        n = int(n)
        device = self.device
        comp = prior_components(self.weights, n, generator)
        z = prior_normal((n, self.dim), generator, device) * self._eigvals[comp].sqrt()
        if self._eigvecs is not None:
            z = torch.einsum("nde,ne->nd", self._eigvecs[comp], z)
        return (self.means[comp] + z).reshape(n, *self.event_shape).to(dtype)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        return self.sample_n(shape.numel()).reshape(shape + self.event_shape)

    def __repr__(self) -> str:
        return (f"GaussianMixturePrior(num_components={self.num_components}, event_shape={tuple(self.event_shape)}, "
                f"schedule={self.schedule.name!r})")


def grid_mixture(dim: int, *, generator: torch.Generator | None = None, spacing: float = 4.0,
                 points_per_axis: int = 5, variance: float = 1.0,
                 schedule: Schedule | None = None) -> GaussianMixturePrior:
    r"""The 25-component mixture testbed of MCGdiff (Cardoso et al. 2023, Sec. 4.1), in dimension ``dim``.

    Component ``(i, j)`` for ``i, j in {-2, ..., 2}`` has mean ``(s i, s j, s i, s j, ...)`` (the pair
    repeated along ``d``; truncated for odd ``d``) with ``s = spacing``, covariance ``variance * I`` and
    weight ``w_ij ∝ g_ij^2`` with ``g_ij ~ N(0, 1)`` drawn from ``generator`` (as in the authors' code).
    The default ``spacing=4`` puts the means on ``{-8, -4, 0, 4, 8}^2``; ``spacing=8`` reproduces the
    authors' script exactly.

    >>> prior = grid_mixture(8, generator=torch.Generator().manual_seed(0))
    >>> prior.num_components, tuple(prior.event_shape)
    (25, (8,))
    """
    if int(dim) < 1 or int(points_per_axis) < 1:
        raise ValueError(f"dim and points_per_axis must be positive, got {dim} and {points_per_axis}")
    half = (int(points_per_axis) - 1) / 2
    axis = (torch.arange(int(points_per_axis), dtype=torch.float64, device="cpu") - half) * float(spacing)
    ii, jj = torch.meshgrid(axis, axis, indexing="ij")
    pairs = torch.stack([ii.reshape(-1), jj.reshape(-1)], dim=1)  # (K, 2)
    means = pairs.repeat(1, (int(dim) + 1) // 2)[:, : int(dim)]
    weights = torch.randn(pairs.shape[0], generator=generator, dtype=torch.float64, device="cpu") ** 2
    return GaussianMixturePrior(weights, means, float(variance), schedule=schedule)
