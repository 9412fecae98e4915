"""Exact posteriors of Gaussian and Gaussian-mixture priors under linear-Gaussian likelihoods.

For ``y = A x + sigma n`` and a component ``x ~ N(mu_k, Sigma_k)``, with ``S_k = A Sigma_k A^T + sigma^2 I``
and gain ``K_k = Sigma_k A^T S_k^{-1}``, the component posterior and evidence are (e.g. Bishop 2006,
Sec. 2.3.3)

    x | y, k ~ N(mu_k + K_k (y - A mu_k), (I - K_k A) Sigma_k (I - K_k A)^T + sigma^2 K_k K_k^T),
    log p(y | k) = log N(y; A mu_k, S_k).

The covariance is written in Joseph's form so it stays positive semi-definite in floating point. A
mixture prior gives a mixture posterior with weights ``w'_k ∝ w_k p(y | k)`` (normalised by
log-sum-exp), as in Cardoso et al. 2023 (MCGdiff). Everything goes through ``operator.to_matrix()``
(small ``d``), in float64.

:func:`sample_exact` draws from it with the signature of a sampler (registry name ``"exact"`` in studies and
``bayesinv sample``), optionally shrunk about the mean: ``shrink < 1`` returns ``mean + shrink (x - mean)``
for exact draws ``x``, an *over-confident* control with the right centre and too little spread, which
every calibration diagnostic must flag.

:func:`mixture_testbed` builds the random problem of MCGdiff: the 25-component grid mixture, a random
``A`` with uniform singular values and a random noise level.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors.gaussian import GaussianPrior
>>> problem = InverseProblem(Identity((2,)), Gaussian(1.0), GaussianPrior(torch.zeros(2), 1.0))
>>> post = exact_posterior(problem, torch.tensor([2.0, -2.0], dtype=torch.float64))
>>> post.mean.round(decimals=12).tolist(), torch.diagonal(post.cov).tolist()  # precision 1 (prior) + 1 (data)
([1.0, -1.0], [0.5, 0.5])
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import torch
from scipy import special

from bayesinv._validation import check_finite
from bayesinv.errors import ShapeError
from bayesinv.noise import Gaussian
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.posterior import Posterior
from bayesinv.priors._marginals import MixturePosteriorBase
from bayesinv.priors.gaussian import (GaussianPrior, StationaryGaussianPrior, as_event_batch, prior_components,
                                     prior_normal, symmetric_eigh)
from bayesinv.priors.lesion_mixture import LesionMixturePrior
from bayesinv.priors.linear_gaussian import MAX_DENSE_DIM as _MAX_DENSE_DIM, dense_linear_gaussian
from bayesinv.priors.mixture import GaussianMixturePrior, grid_mixture
from bayesinv.priors.schedules import Schedule
from bayesinv.problem import InverseProblem

__all__ = ["GaussianMixturePosterior", "exact_posterior", "sample_exact", "dense_linear_gaussian",
           "random_measurement", "mixture_testbed", "MixtureTestbed"]


class GaussianMixturePosterior(MixturePosteriorBase):
    """An exact posterior ``sum_k w_k N(m_k, C_k)`` (``K = 1`` for a Gaussian prior).

    Attributes
    ----------
    weights : ``(K,)`` posterior component weights.
    means : ``(K, d)`` component means; covs : ``(K, d, d)`` component covariances.
    component_log_evidence : ``(K,)`` ``log p(y | k)``; prior_log_weights : ``(K,)``; log_evidence : ``log p(y)``.
    event_shape : the shape of one sample.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, event_shape,
                 component_log_evidence: torch.Tensor | None = None, prior_log_weights: torch.Tensor | None = None):
        self.weights = weights.to(torch.float64)
        self.means = means.to(torch.float64)
        self.covs = 0.5 * (covs + covs.transpose(-1, -2)).to(torch.float64)
        self.event_shape = tuple(event_shape)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d) or math.prod(self.event_shape) != d:
            raise ShapeError(f"inconsistent shapes: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                             f"covs {tuple(covs.shape)}, event_shape {self.event_shape}")
        self.component_log_evidence = component_log_evidence
        self.prior_log_weights = prior_log_weights
        self._eigvals, self._eigvecs = symmetric_eigh("covs", self.covs)

    # -- moments ----------------------------------------------------------------------------------
    @property
    def is_gaussian(self) -> bool:
        return self.num_components == 1

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights @ self.means).reshape(self.event_shape)

    @property
    def cov(self) -> torch.Tensor:
        """The total covariance ``sum_k w_k (C_k + m_k m_k^T) - m m^T``: ``(d, d)``."""
        m = self.weights @ self.means
        second = torch.einsum("k,kij->ij", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - torch.outer(m, m)

    @property
    def variance(self) -> torch.Tensor:
        """Marginal variances, event-shaped."""
        m = self.weights @ self.means
        comp_var = torch.diagonal(self.covs, dim1=-2, dim2=-1)
        return (self.weights @ (comp_var + self.means**2) - m**2).clamp_min(0).reshape(self.event_shape)

    @property
    def std(self) -> torch.Tensor:
        return self.variance.sqrt()

    # -- densities and samples ----------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact posterior log-density ``log sum_k w_k N(x; m_k, C_k)`` for ``x: (*batch, *event_shape)``."""
        xf, batch = as_event_batch("x", x, self.event_shape)
        if bool((self._eigvals <= 0).any()):
            raise ValueError("the posterior covariance is singular (e.g. noiseless directions); no density")
        coef = torch.einsum("bkd,kde->bke", xf[:, None, :] - self.means, self._eigvecs)
        log_n = -0.5 * ((coef**2 / self._eigvals).sum(-1) + self._eigvals.log().sum(-1)
                        + self.dim * math.log(2 * math.pi))
        return torch.logsumexp(self.weights.log() + log_n, dim=1).reshape(batch)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``n`` exact independent draws, ``(n, *event_shape)``."""
        n = int(n)
        device = self.weights.device  # drawn on the generator's device, then moved (the same numbers everywhere)
        comp = prior_components(self.weights, n, generator)
        z = prior_normal((n, self.dim), generator, device) * self._eigvals[comp].sqrt()
        x = self.means[comp] + torch.einsum("nde,ne->nd", self._eigvecs[comp], z)
        return x.reshape(n, *self.event_shape).to(dtype)

    def to_posterior(self, n: int, *, generator: torch.Generator | None = None, seed: int | None = None) -> Posterior:
        """``n`` exact draws as a :class:`~bayesinv.posterior.Posterior` (``n`` chains of one draw)."""
        samples = self.sample(n, generator=generator)
        return Posterior(samples[:, None], sampler="exact", seed=seed,
                         settings={"num_components": self.num_components})

    # -- marginal quantiles ---------------------------------------------------------------------------
    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """Marginal CDFs ``P(X_i <= x_i)`` per coordinate, for ``x: (*batch, *event_shape)``."""
        xf, batch = as_event_batch("x", x, self.event_shape)
        comp_std = torch.diagonal(self.covs, dim1=-2, dim2=-1).clamp_min(0).sqrt().numpy()
        vals = self._marginal_cdf(xf.numpy(), self.means.numpy(), comp_std, self.weights.numpy())
        return torch.from_numpy(vals).reshape(*batch, *self.event_shape)

    @staticmethod
    def _marginal_cdf(x: np.ndarray, means: np.ndarray, stds: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # x: (N, d); means/stds: (K, d) -> (N, d). A zero std is a point mass (step function).
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (x[:, None, :] - means[None]) / stds[None]
        z = np.where(stds[None] > 0, z, np.where(x[:, None, :] >= means[None], np.inf, -np.inf))
        return np.einsum("k,nkd->nd", weights, special.ndtr(z))

    def quantile(self, q) -> torch.Tensor:
        """Marginal quantiles per coordinate: ``(*event_shape)`` for a float ``q``, ``(len(q), *event_shape)`` else.

        Closed form for a Gaussian; for a mixture the root of ``sum_k w_k Phi((x - m_ki)/s_ki) = q`` is found
        by bisection on a bracket that contains it (60 + halvings to float64 resolution), per coordinate.
        """
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if qs.ndim != 1 or not np.all((qs > 0) & (qs < 1)):
            raise ValueError(f"q must be in (0, 1), got {q}")
        means = self.means.numpy()
        stds = torch.diagonal(self.covs, dim1=-2, dim2=-1).clamp_min(0).sqrt().numpy()
        if self.is_gaussian:
            out = means[0] + stds[0] * special.ndtri(qs)[:, None]
        else:
            z = special.ndtri(qs)[:, None, None]
            # every component's CDF is <= q left of m - |z_q| s and >= q right of m + |z_q| s: a bracket
            lo = np.broadcast_to((means[None] - np.abs(z) * stds[None]).min(1) - 1e-12, (len(qs), self.dim)).copy()
            hi = np.broadcast_to((means[None] + np.abs(z) * stds[None]).max(1) + 1e-12, (len(qs), self.dim)).copy()
            weights = self.weights.numpy()
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                below = self._marginal_cdf(mid, means, stds, weights) < qs[:, None]
                lo = np.where(below, mid, lo)
                hi = np.where(below, hi, mid)
                if np.all(hi - lo <= 4 * np.finfo(np.float64).eps * np.maximum(np.abs(mid), 1.0)):
                    break
            out = 0.5 * (lo + hi)
        result = torch.from_numpy(np.ascontiguousarray(out)).reshape(len(qs), *self.event_shape)
        return result[0] if np.ndim(q) == 0 else result

    def __repr__(self) -> str:
        return f"GaussianMixturePosterior(num_components={self.num_components}, event_shape={self.event_shape})"


def _prior_components(prior) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(prior, GaussianMixturePrior):
        return prior.weights, prior.means, prior.covariance_matrices
    if isinstance(prior, GaussianPrior | StationaryGaussianPrior):
        ones = torch.ones(1, dtype=torch.float64, device=prior.device)
        return ones, prior.mean_vector[None], prior.covariance_matrix[None]
    raise TypeError("exact_posterior needs a GaussianPrior, StationaryGaussianPrior or GaussianMixturePrior, "
                    f"got {type(prior).__name__}")


def exact_posterior(problem: InverseProblem, y: torch.Tensor, *, prior=None) -> GaussianMixturePosterior:
    """The exact posterior ``p(x | y)`` of a linear-Gaussian problem with a Gaussian or mixture prior.

    Parameters
    ----------
    problem : an :class:`~bayesinv.problem.InverseProblem` with a :class:`~bayesinv.operators.base.LinearOperator` (real images)
        and :class:`~bayesinv.noise.Gaussian` noise of known sigma.
    y : one measurement, ``out_shape`` or ``(1, *out_shape)``.
    prior : overrides ``problem.prior``.

    Returns
    -------
    GaussianMixturePosterior with one component per prior component (see module docstring); for a
    :class:`~bayesinv.priors.lesion_mixture.LesionMixturePrior` a
    :class:`~bayesinv.priors.lesion_posterior.SharedCovarianceMixturePosterior` (same interface).
    """
    prior = problem.prior if prior is None else prior
    if isinstance(prior, LesionMixturePrior):  # components share one covariance: one solve for all
        return LesionPosteriorSolver(problem, prior=prior).posterior(y)
    weights, means, covs = _prior_components(prior)
    matrix, y_vec, sigma = dense_linear_gaussian(problem, y)
    m, d = matrix.shape
    if d != means.shape[1]:
        raise ShapeError(f"the operator's in_dim {d} differs from the prior's dimension {means.shape[1]}")
    a_sigma = matrix @ covs  # (K, m, d)
    s = a_sigma @ matrix.T + sigma**2 * torch.eye(m, dtype=torch.float64, device=covs.device)  # (K, m, m)
    chol = torch.linalg.cholesky(0.5 * (s + s.transpose(-1, -2)))
    resid = y_vec - means @ matrix.T  # (K, m)
    white_resid = torch.linalg.solve_triangular(chol, resid[..., None], upper=False)[..., 0]
    gain = torch.cholesky_solve(a_sigma, chol).transpose(-1, -2)  # Sigma A^T S^{-1}: (K, d, m)
    post_means = means + (gain @ resid[..., None])[..., 0]
    reduce = torch.eye(d, dtype=torch.float64, device=covs.device) - gain @ matrix  # I - K A
    post_covs = reduce @ covs @ reduce.transpose(-1, -2) + sigma**2 * gain @ gain.transpose(-1, -2)
    log_ev = -0.5 * ((white_resid**2).sum(-1) + 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
                     + m * math.log(2 * math.pi))
    log_joint = weights.log() + log_ev
    return GaussianMixturePosterior(torch.softmax(log_joint, 0), post_means, post_covs, prior.event_shape,
                                    component_log_evidence=log_ev, prior_log_weights=weights.log())


def sample_exact(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, generator: torch.Generator,
                 shrink: float = 1.0, progress: bool = False) -> Posterior:
    """``num_samples`` exact posterior draws, optionally shrunk about the posterior mean by ``shrink``.

    Parameters
    ----------
    problem : linear operator, Gaussian noise with known sigma, Gaussian or mixture prior.
    y : one measurement ``(1, *out_shape)``.
    num_samples : draws (returned as ``num_samples`` chains of one draw).
    generator : the only source of randomness.
    shrink : ``1`` gives exact draws; ``0 < shrink < 1`` an over-confident control (module docstring).
    progress : ignored (accepted for the uniform sampler signature).

    Examples
    --------
    >>> from bayesinv import Gaussian, InverseProblem
    >>> from bayesinv.operators import Identity
    >>> problem = InverseProblem(Identity((2,)), Gaussian(1.0), GaussianPrior(torch.zeros(2), 1.0))
    >>> post = sample_exact(problem, torch.zeros(1, 2), num_samples=4, generator=torch.Generator().manual_seed(0))
    >>> tuple(post.samples.shape), post.sampler
    ((4, 1, 2), 'exact')
    """
    if not shrink > 0:
        raise ValueError(f"shrink must be positive, got {shrink}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    start = time.perf_counter()
    post = exact_posterior(problem, y)
    draws = post.sample(num_samples, generator=generator)
    mean = post.mean.reshape(post.event_shape)
    draws = mean + shrink * (draws - mean)
    return Posterior(draws[:, None], sampler="exact", settings={"shrink": shrink}, nfe=0,
                     wall_time=time.perf_counter() - start, problem={"name": getattr(problem, "name", "")})


def random_measurement(dim: int, num_measurements: int, *, generator: torch.Generator | None = None,
                       in_shape=None) -> tuple[MatrixOperator, float]:
    """The random linear measurement of MCGdiff (Cardoso et al. 2023, Sec. 4.1): ``(operator, sigma_y)``.

    ``A = U diag(s) V_r^T`` where ``U, V`` are the singular vectors of a standard Gaussian ``(d_y, d)``
    matrix, ``s`` are ``d_y`` uniform(0, 1) draws sorted in decreasing order, and the noise std is
    ``sigma_y = u * max(s)`` with ``u ~ uniform(0, 1)``.

    >>> op, sigma = random_measurement(8, 2, generator=torch.Generator().manual_seed(0))
    >>> op.out_shape, 0 < sigma < 1
    ((2,), True)
    """
    dim, num_measurements = int(dim), int(num_measurements)
    if not 1 <= num_measurements <= dim:
        raise ValueError(f"num_measurements must be in [1, dim={dim}], got {num_measurements}")
    gauss = torch.randn(num_measurements, dim, generator=generator, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(gauss, full_matrices=False)
    singulars = torch.sort(torch.rand(num_measurements, generator=generator, dtype=torch.float64),
                           descending=True).values
    sigma = float(torch.rand(1, generator=generator, dtype=torch.float64)) * float(singulars[0])
    return MatrixOperator((u * singulars) @ vh, in_shape=in_shape), sigma


class MixtureTestbed(NamedTuple):
    """A random problem with known ground truth: ``problem``, true ``x``, measurement ``y``, exact ``posterior``."""

    problem: InverseProblem
    x: torch.Tensor
    y: torch.Tensor
    posterior: GaussianMixturePosterior


def mixture_testbed(dim: int, num_measurements: int, *, generator: torch.Generator | None = None,
                    spacing: float = 4.0, schedule: Schedule | None = None) -> MixtureTestbed:
    """MCGdiff's mixture benchmark: :func:`grid_mixture` prior, :func:`random_measurement`, ``x ~ prior``.

    >>> bed = mixture_testbed(8, 1, generator=torch.Generator().manual_seed(0))
    >>> bed.posterior.num_components, tuple(bed.y.shape)
    (25, (1, 1))
    """
    prior = grid_mixture(dim, generator=generator, spacing=spacing, schedule=schedule)
    operator, sigma = random_measurement(dim, num_measurements, generator=generator)
    problem = InverseProblem(operator, Gaussian(sigma), prior, name=f"mcgdiff_mixture_d{dim}_m{num_measurements}")
    x = prior.sample_n(1, generator=generator)
    y = check_finite("y", problem.simulate(x, generator=generator))
    return MixtureTestbed(problem, x, y, exact_posterior(problem, y))


# The lesion-mixture prior's exact posterior lives in a sibling module (imported last: it uses
# dense_linear_gaussian above); exact_posterior dispatches to it.
from bayesinv.priors.lesion_posterior import (LesionPosteriorSolver, SharedCovarianceMixturePosterior,  # noqa: E402
                                              exact_lesion_posterior)

__all__ += ["SharedCovarianceMixturePosterior", "LesionPosteriorSolver", "exact_lesion_posterior"]
