r"""The exact posterior of :class:`~bayesinv.priors.lesion_mixture.LesionMixturePrior` under ``y = A x + sigma n``.

All components share the prior covariance ``Sigma``, so they share ``S = A Sigma A^T + sigma^2 I``, the gain
``K = Sigma A^T S^{-1}`` and the posterior covariance (Joseph form)
``P = (I - K A) Sigma (I - K A)^T + sigma^2 K K^T``; only the means and weights depend on ``y``:

    x | y, j ~ N(m_j + K (y - A m_j), P),     P(j | y) ∝ w_j N(y; A m_j, S).

:class:`LesionPosteriorSolver` computes the shared part once per problem (dense, ``d <= 4096``: one
``d x d`` covariance, ``O(d^3)``); :meth:`LesionPosteriorSolver.posterior` then costs ``O(J m^2 + J d m)``
per measurement. For a circulant operator (denoising, periodic deblurring) ``S`` and ``P`` are diagonal in
Fourier and the same formulas hold; the dense computation is exact there too. The result,
:class:`SharedCovarianceMixturePosterior`, gives exact lesion probabilities ``P(lesion at k | y)`` and
``P(any lesion | y)`` (the component weights), per-pixel equal-tailed intervals (bisection on the per-pixel
mixture CDF) and exact draws.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special

from bayesinv._validation import check_tensor
from bayesinv.errors import ShapeError
from bayesinv.posterior import Posterior
from bayesinv.priors._marginals import MixturePosteriorBase
from bayesinv.priors.gaussian import as_event_batch, prior_components, prior_normal
from bayesinv.priors.lesion_mixture import LesionMixturePrior
from bayesinv.problem import InverseProblem

__all__ = ["SharedCovarianceMixturePosterior", "LesionPosteriorSolver", "exact_lesion_posterior"]


def _psd_factor(cov: torch.Tensor) -> torch.Tensor:
    """A square root ``L`` with ``L L^T = cov`` (Cholesky, or eigen-decomposition if that fails)."""
    cov = 0.5 * (cov + cov.T)
    factor, info = torch.linalg.cholesky_ex(cov)
    if int(info) == 0:
        return factor
    lam, vecs = torch.linalg.eigh(cov)
    return vecs * lam.clamp_min(0).sqrt()


class SharedCovarianceMixturePosterior(MixturePosteriorBase):
    """An exact posterior ``sum_j w_j N(m_j, P)`` whose components share one covariance ``P``.

    Attributes
    ----------
    weights : ``(J,)``; means : ``(J, d)``; shared_cov : ``(d, d)``; event_shape.
    location_index : ``(J,)`` lesion location of each component, ``-1`` for "no lesion".
    component_log_evidence, prior_log_weights : ``(J,)`` ``log p(y | j)`` and ``log w_j``.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, shared_cov: torch.Tensor, event_shape,
                 *, location_index: torch.Tensor | None = None, component_log_evidence: torch.Tensor | None = None,
                 prior_log_weights: torch.Tensor | None = None, factor: torch.Tensor | None = None):
        self.weights = weights.to(torch.float64)
        self.means = means.to(torch.float64)
        self.shared_cov = shared_cov.to(torch.float64)
        self.event_shape = tuple(event_shape)
        j, d = self.means.shape
        if self.weights.shape != (j,) or self.shared_cov.shape != (d, d) or math.prod(self.event_shape) != d:
            raise ShapeError(f"inconsistent shapes: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                             f"shared_cov {tuple(shared_cov.shape)}, event_shape {self.event_shape}")
        self.location_index = location_index
        self.component_log_evidence = component_log_evidence
        self.prior_log_weights = prior_log_weights
        self._factor = _psd_factor(self.shared_cov) if factor is None else factor
        self._std = torch.diagonal(self.shared_cov).clamp_min(0).sqrt()

    @property
    def covs(self) -> torch.Tensor:
        """Component covariances ``(J, d, d)`` (one shared matrix, expanded: a view, no copy)."""
        return self.shared_cov.expand(self.num_components, self.dim, self.dim)

    # -- lesions --------------------------------------------------------------------------------------
    @property
    def lesion_probability(self) -> float:
        """``P(any lesion | y)``: the total weight of the lesion components."""
        if self.location_index is None:
            raise ValueError("this posterior has no lesion labels")
        return float(self.weights[self.location_index >= 0].sum())

    @property
    def location_probabilities(self) -> torch.Tensor:
        """``P(lesion at location k | y)`` ``(K,)``."""
        if self.location_index is None:
            raise ValueError("this posterior has no lesion labels")
        lesion = self.location_index >= 0
        num = int(self.location_index.max()) + 1
        out = torch.zeros(num, dtype=torch.float64, device=self.weights.device)
        return out.index_add_(0, self.location_index[lesion], self.weights[lesion])

    # -- moments ----------------------------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        return (self.weights @ self.means).reshape(self.event_shape)

    @property
    def cov(self) -> torch.Tensor:
        """Total covariance ``P + sum_j w_j m_j m_j^T - m m^T``."""
        centred = self.means - self.weights @ self.means
        return self.shared_cov + (centred.T * self.weights) @ centred

    @property
    def variance(self) -> torch.Tensor:
        spread = self.weights @ self.means**2 - (self.weights @ self.means) ** 2
        return (self._std**2 + spread.clamp_min(0)).reshape(self.event_shape)

    @property
    def std(self) -> torch.Tensor:
        return self.variance.sqrt()

    # -- densities and draws ----------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log sum_j w_j N(x; m_j, P)`` for ``x: (*batch, *event_shape)``."""
        xf, batch = as_event_batch("x", x, self.event_shape)
        diag = torch.diagonal(self._factor)
        if self._factor.shape[0] != self.dim or bool((diag <= 0).any()) or \
                bool((self._factor.triu(1) != 0).any()):
            raise ValueError("log_prob needs a positive-definite (Cholesky-factorable) posterior covariance")
        resid = (xf[:, None, :] - self.means).reshape(-1, self.dim).T
        white = torch.linalg.solve_triangular(self._factor, resid, upper=False).T.reshape(xf.shape[0], -1, self.dim)
        log_n = -0.5 * ((white**2).sum(-1) + self.dim * math.log(2 * math.pi)) - diag.log().sum()
        return torch.logsumexp(self.weights.log() + log_n, dim=1).reshape(batch)

    def sample_components(self, n: int, *, generator: torch.Generator | None = None,
                          dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact draws ``(n, *event_shape)`` and their components ``(n,)``."""
        n = int(n)
        device = self.weights.device  # drawn on the generator's device, then moved (the same numbers everywhere)
        comp = prior_components(self.weights, n, generator)
        z = prior_normal((n, self._factor.shape[1]), generator, device)
        x = self.means[comp] + z @ self._factor.T
        return x.reshape(n, *self.event_shape).to(dtype), comp

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` exact independent draws ``(n, *event_shape)``."""
        return self.sample_components(n, generator=generator, dtype=dtype)[0]

    def to_posterior(self, n: int, *, generator: torch.Generator | None = None, seed: int | None = None) -> Posterior:
        """``n`` exact draws as a :class:`~bayesinv.posterior.Posterior` (``n`` chains of one draw)."""
        return Posterior(self.sample(n, generator=generator)[:, None], sampler="exact", seed=seed,
                         settings={"num_components": self.num_components})

    # -- marginal quantiles -------------------------------------------------------------------------------
    def _marginal_cdf(self, x: np.ndarray, weights: np.ndarray, means: np.ndarray, std: np.ndarray) -> np.ndarray:
        return np.einsum("k,nkd->nd", weights, special.ndtr((x[:, None, :] - means[None]) / std))

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """Marginal CDFs ``P(X_i <= x_i | y) = sum_j w_j Phi((x_i - m_ji) / s_i)`` per coordinate."""
        xf, batch = as_event_batch("x", x, self.event_shape)
        vals = self._marginal_cdf(xf.numpy(), self.weights.numpy(), self.means.numpy(), self._std.numpy())
        return torch.from_numpy(vals).reshape(*batch, *self.event_shape)

    def quantile(self, q) -> torch.Tensor:
        """Marginal quantiles per coordinate: the root of ``sum_j w_j Phi((x - m_ji)/s_i) = q`` by bisection.

        The bracket ``[min_j m_ji - |z_q| s_i, max_j m_ji + |z_q| s_i]`` contains the root (every component's
        CDF is ``<= q`` left of it and ``>= q`` right of it); components of weight below ``1e-16`` are dropped
        (they move a CDF by less than float64 resolution).
        """
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if qs.ndim != 1 or not np.all((qs > 0) & (qs < 1)):
            raise ValueError(f"q must be in (0, 1), got {q}")
        keep = self.weights > 1e-16
        weights = (self.weights[keep] / self.weights[keep].sum()).numpy()
        means, std = self.means[keep].numpy(), self._std.numpy()
        if bool((self._std <= 0).any()):
            raise ValueError("quantile needs positive marginal variances (a noiseless direction has none)")
        z = np.abs(special.ndtri(qs))[:, None]
        lo = means.min(0)[None] - z * std - 1e-12
        hi = means.max(0)[None] + z * std + 1e-12
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            below = np.stack([self._marginal_cdf(mid[i:i + 1], weights, means, std)[0] for i in range(len(qs))]) \
                < qs[:, None]
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
            if np.all(hi - lo <= 4 * np.finfo(np.float64).eps * np.maximum(np.abs(mid), 1.0)):
                break
        result = torch.from_numpy(0.5 * (lo + hi)).reshape(len(qs), *self.event_shape)
        return result[0] if np.ndim(q) == 0 else result

    def __repr__(self) -> str:
        return (f"SharedCovarianceMixturePosterior(num_components={self.num_components}, "
                f"event_shape={self.event_shape})")


class LesionPosteriorSolver:
    """The measurement-independent part of the exact posterior, computed once per problem (module docstring).

    >>> import torch
    >>> from bayesinv import Gaussian, InverseProblem
    >>> from bayesinv.operators import Identity
    >>> prior = LesionMixturePrior.from_phantoms(8, num_phantoms=100, num_locations=1)
    >>> solver = LesionPosteriorSolver(InverseProblem(Identity((1, 8, 8)), Gaussian(0.05), prior))
    >>> post = solver.posterior(prior.sample_n(1, generator=torch.Generator().manual_seed(0)))
    >>> post.num_components, 0.0 <= post.lesion_probability <= 1.0
    (3, True)
    """

    def __init__(self, problem: InverseProblem, *, prior: LesionMixturePrior | None = None):
        from bayesinv.priors.linear_gaussian import dense_linear_gaussian

        prior = problem.prior if prior is None else prior
        if not isinstance(prior, LesionMixturePrior):
            raise TypeError(f"LesionPosteriorSolver needs a LesionMixturePrior, got {type(prior).__name__}")
        self.problem, self.prior = problem, prior
        zero_y = problem.operator(torch.zeros(1, *prior.event_shape, dtype=torch.float64, device=prior.device))
        matrix, _, sigma = dense_linear_gaussian(problem, zero_y)
        if matrix.shape[1] != prior.dim:
            raise ShapeError(f"the operator's in_dim {matrix.shape[1]} differs from the prior's dimension {prior.dim}")
        m = matrix.shape[0]
        cov = prior.covariance_matrix
        a_cov = matrix @ cov  # (m, d)
        s = a_cov @ matrix.T + sigma**2 * torch.eye(m, dtype=torch.float64, device=cov.device)
        self._chol_s = torch.linalg.cholesky(0.5 * (s + s.T))
        self._gain = torch.cholesky_solve(a_cov, self._chol_s).T  # (d, m)
        reduce = torch.eye(prior.dim, dtype=torch.float64, device=cov.device) - self._gain @ matrix
        self.shared_cov = reduce @ cov @ reduce.T + sigma**2 * self._gain @ self._gain.T
        self.shared_cov = 0.5 * (self.shared_cov + self.shared_cov.T)
        self._factor = _psd_factor(self.shared_cov)
        self._matrix = matrix
        self._means = prior.means  # (J, d)
        self._projected = self._means @ matrix.T  # (J, m)
        self._log_det_s = 2 * torch.diagonal(self._chol_s).log().sum()
        self._location_index = torch.cat([torch.tensor([-1], device=prior.location_index.device), prior.location_index])

    def posterior(self, y: torch.Tensor) -> SharedCovarianceMixturePosterior:
        """The exact posterior given one measurement ``y`` (``out_shape`` or ``(1, *out_shape)``)."""
        check_tensor("y", y)
        resid = self._vector(y) - self._projected  # (J, m)
        white = torch.linalg.solve_triangular(self._chol_s, resid.T, upper=False).T
        m = resid.shape[1]
        log_ev = -0.5 * ((white**2).sum(1) + self._log_det_s + m * math.log(2 * math.pi))
        log_w = self.prior.weights.log()
        weights = torch.softmax(log_w + log_ev, 0)
        means = self._means + resid @ self._gain.T
        return SharedCovarianceMixturePosterior(weights, means, self.shared_cov, self.prior.event_shape,
                                                location_index=self._location_index, component_log_evidence=log_ev,
                                                prior_log_weights=log_w, factor=self._factor)

    def _vector(self, y: torch.Tensor) -> torch.Tensor:
        y = self.problem.check_measurement(y.detach())
        if y.shape[0] != 1:
            raise ShapeError(f"y must hold one measurement, got shape {tuple(y.shape)}")
        if y.is_complex():
            return torch.view_as_real(y.to(torch.complex128)).reshape(-1)
        return y.to(torch.float64).reshape(-1)


def exact_lesion_posterior(problem: InverseProblem, y: torch.Tensor) -> SharedCovarianceMixturePosterior:
    """The exact posterior of a linear-Gaussian problem with a :class:`LesionMixturePrior` (one-off solver)."""
    return LesionPosteriorSolver(problem).posterior(y)
