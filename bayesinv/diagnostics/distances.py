"""Sample-based distances to an exact posterior: sliced Wasserstein, MMD, and their noise floor.

"How close is this sampler to the exact posterior?" is one call,
:func:`distance_to_reference`, which returns the distance from the sampler's draws to fresh exact draws
together with the **noise floor**: the same distance between two independent exact sample sets of the
same sizes. A sampler is indistinguishable from exact at this sample size when ``distance ≈ floor``.

* :func:`wasserstein_1d`: exact ``W_p`` between two 1-D empirical measures (any sizes), from quantile
  functions, ``W_p^p = int_0^1 |F^{-1}(u) - G^{-1}(u)|^p du``.
* :func:`sliced_wasserstein`: ``SW_p = (E_theta W_p^p(theta^T X, theta^T Y))^{1/p}`` over uniformly
  random directions ``theta`` on the sphere (Rabin et al. 2011; Bonneel et al. 2015).
* :func:`mmd`: the unbiased estimate of ``MMD^2`` with a Gaussian (RBF) kernel and the median-heuristic
  bandwidth (Gretton et al. 2012, "A kernel two-sample test", JMLR 13, Lemma 6).

>>> import torch
>>> x = torch.tensor([[0.0], [1.0]])
>>> float(wasserstein_1d(x[:, 0], x[:, 0] + 3.0))
3.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from bayesinv._validation import check_finite, check_tensor
from bayesinv.errors import ShapeError
from bayesinv.posterior import Posterior

__all__ = ["wasserstein_1d", "sliced_wasserstein", "random_directions", "mmd", "median_bandwidth",
           "noise_floor", "distance_to_reference", "DistanceResult"]


def _as_points(name: str, x) -> torch.Tensor:
    """Samples ``(n, *event)`` (or a Posterior) -> float64 ``(n, d)``."""
    if isinstance(x, Posterior):
        x = x.flat()
    check_tensor(name, x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ShapeError(f"{name} must have shape (n, ...) with n >= 1, got {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1) if x.ndim > 1 else x[:, None]
    return check_finite(name, x.to(torch.float64))


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Exact ``W_p`` between the empirical measures of ``x: (..., n)`` and ``y: (..., m)`` (batched over ``...``).

    Both quantile functions are step functions, constant between the breakpoints ``{i/n} ∪ {j/m}``, so the
    integral is a finite sum (equal sizes: ``W_p^p = mean |x_(i) - y_(i)|^p`` over the sorted samples).
    """
    check_tensor("x", x)
    check_tensor("y", y)
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    if x.shape[:-1] != y.shape[:-1] or x.shape[-1] < 1 or y.shape[-1] < 1:
        raise ShapeError(f"x and y must share leading dims and be non-empty, got {tuple(x.shape)} and {tuple(y.shape)}")
    xs = torch.sort(x.to(torch.float64), dim=-1).values
    ys = torch.sort(y.to(torch.float64), dim=-1).values
    n, m = xs.shape[-1], ys.shape[-1]
    if n == m:
        return ((xs - ys).abs() ** p).mean(-1) ** (1 / p)
    breaks = torch.unique(torch.cat([torch.arange(n + 1, dtype=torch.float64) / n,
                                     torch.arange(m + 1, dtype=torch.float64) / m]))
    mids = 0.5 * (breaks[1:] + breaks[:-1])
    widths = breaks[1:] - breaks[:-1]
    ix = (mids * n).floor().long().clamp_max(n - 1)
    iy = (mids * m).floor().long().clamp_max(m - 1)
    return ((xs[..., ix] - ys[..., iy]).abs() ** p * widths).sum(-1) ** (1 / p)


def random_directions(dim: int, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` directions uniform on the unit sphere in ``R^dim``: ``(num, dim)`` float64."""
    theta = torch.randn(int(num), int(dim), generator=generator, dtype=torch.float64)
    return theta / theta.norm(dim=1, keepdim=True)


def sliced_wasserstein(x, y, *, num_projections: int = 256, p: float = 2.0, generator: torch.Generator | None = None,
                       directions: torch.Tensor | None = None) -> torch.Tensor:
    """Monte Carlo sliced Wasserstein ``SW_p(x, y) = (mean_theta W_p^p(x theta, y theta))^{1/p}``.

    Parameters
    ----------
    x, y : samples ``(n, *event)`` and ``(m, *event)`` (or :class:`~bayesinv.posterior.Posterior`).
    num_projections : number of random directions (ignored if ``directions`` is given).
    generator : draws the directions (pass one for reproducible values).
    directions : ``(L, d)`` unit vectors to use instead of random ones.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(500, 3, generator=g)
    >>> float(sliced_wasserstein(x, x, generator=g))
    0.0
    """
    xp, yp = _as_points("x", x), _as_points("y", y)
    if xp.shape[1] != yp.shape[1]:
        raise ShapeError(f"x and y must have the same event size, got {xp.shape[1]} and {yp.shape[1]}")
    if directions is None:
        directions = random_directions(xp.shape[1], num_projections, generator=generator)
    directions = directions.to(torch.float64)
    if directions.ndim != 2 or directions.shape[1] != xp.shape[1]:
        raise ShapeError(f"directions must have shape (L, {xp.shape[1]}), got {tuple(directions.shape)}")
    per_direction = wasserstein_1d((xp @ directions.T).T, (yp @ directions.T).T, p=p) ** p
    return per_direction.mean() ** (1 / p)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)


def median_bandwidth(x, y, *, max_points: int = 1000) -> float:
    """The median heuristic: the median pairwise Euclidean distance in the pooled sample (first ``max_points``)."""
    pooled = torch.cat([_as_points("x", x), _as_points("y", y)])[:max_points]
    dist = _sq_dists(pooled, pooled).sqrt()
    off = dist[~torch.eye(pooled.shape[0], dtype=torch.bool)]
    h = float(off.median()) if off.numel() else 1.0
    return h if h > 0 else 1.0


def mmd(x, y, *, bandwidth: float | None = None) -> torch.Tensor:
    r"""Unbiased ``MMD^2`` with the kernel ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` (Gretton et al. 2012).

    ``MMD^2_u = 1/(n(n-1)) sum_{i≠j} k(x_i, x_j) + 1/(m(m-1)) sum_{i≠j} k(y_i, y_j)
    - 2/(nm) sum_{i,j} k(x_i, y_j)``;
    its expectation is the population ``MMD^2`` (zero iff the distributions agree), so it can be slightly
    negative. ``bandwidth=None`` uses :func:`median_bandwidth`.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> abs(float(mmd(torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)))) < 0.01
    True
    """
    xp, yp = _as_points("x", x), _as_points("y", y)
    if xp.shape[1] != yp.shape[1]:
        raise ShapeError(f"x and y must have the same event size, got {xp.shape[1]} and {yp.shape[1]}")
    n, m = xp.shape[0], yp.shape[0]
    if n < 2 or m < 2:
        raise ShapeError(f"the unbiased MMD needs at least 2 samples in each set, got {n} and {m}")
    h = median_bandwidth(xp, yp) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    kxx = torch.exp(-_sq_dists(xp, xp) / (2 * h * h))
    kyy = torch.exp(-_sq_dists(yp, yp) / (2 * h * h))
    kxy = torch.exp(-_sq_dists(xp, yp) / (2 * h * h))
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return term_x + term_y - 2 * kxy.mean()


class DistanceResult(NamedTuple):
    """A sampler's distance to exact samples and the noise floor at the same sample sizes."""

    distance: float
    floor: float
    num_samples: int
    num_reference: int
    metric: str

    @property
    def ratio(self) -> float:
        """``distance / floor``: about 1 when the sampler is indistinguishable from exact at this size."""
        return self.distance / self.floor if self.floor > 0 else float("inf")


def _metric(name: str) -> Callable:
    table = {"sliced_wasserstein": sliced_wasserstein, "sw": sliced_wasserstein, "mmd": mmd}
    if name not in table:
        raise ValueError(f"unknown distance {name!r}; choose 'sliced_wasserstein' (or 'sw') or 'mmd'")
    return table[name]


def _draw(exact_sampler, n: int, generator) -> torch.Tensor:
    """Draw ``n`` exact samples from a prior (``sample_n``), an exact posterior (``sample``) or a callable."""
    if hasattr(exact_sampler, "sample_n"):
        return exact_sampler.sample_n(n, generator=generator)
    if not callable(exact_sampler) and hasattr(exact_sampler, "sample"):
        return exact_sampler.sample(n, generator=generator)
    if callable(exact_sampler):
        return exact_sampler(n, generator=generator)
    raise TypeError(f"exact_sampler must be callable as (n, generator=...) or have a sample method, "
                    f"got {type(exact_sampler).__name__}")


def _paired_distance(metric: str, a: torch.Tensor, b: torch.Tensor, directions, **options) -> float:
    if _metric(metric) is sliced_wasserstein:
        return float(sliced_wasserstein(a, b, directions=directions, **options))
    return float(mmd(a, b, **options))


def distance_to_reference(samples, exact_sampler, *, distance: str = "sliced_wasserstein",
                          num_reference: int | None = None, generator: torch.Generator | None = None,
                          num_projections: int = 256, **options) -> DistanceResult:
    """Distance from ``samples`` to exact draws, and the noise floor of two exact sets of the same sizes.

    Parameters
    ----------
    samples : ``(n, *event)`` draws or a :class:`~bayesinv.posterior.Posterior` (all chains pooled).
    exact_sampler : a callable ``(n, generator=...) -> (n, *event)``, an exact posterior from
        :func:`~bayesinv.priors.exact_posterior` (its ``sample``) or a prior (its ``sample_n``).
    distance : ``"sliced_wasserstein"`` (``"sw"``) or ``"mmd"`` (unbiased ``MMD^2``).
    num_reference : size of the exact reference set (default ``n``).
    generator : draws the reference sets and the projection directions.

    Both distances use the same reference set and (for SW) the same directions:
    ``distance = D(samples, ref)``, ``floor = D(exact', ref)`` with ``exact'`` an independent exact set of
    size ``n``.
    """
    metric = _metric(distance)
    points = _as_points("samples", samples)
    n = points.shape[0]
    m = n if num_reference is None else int(num_reference)
    reference = _as_points("reference", _draw(exact_sampler, m, generator))
    fresh = _as_points("exact draws", _draw(exact_sampler, n, generator))
    if reference.shape[1] != points.shape[1]:
        raise ShapeError(f"samples have event size {points.shape[1]} but the exact sampler gives {reference.shape[1]}")
    directions = random_directions(points.shape[1], num_projections, generator=generator) \
        if metric is sliced_wasserstein else None
    return DistanceResult(_paired_distance(distance, points, reference, directions, **options),
                          _paired_distance(distance, fresh, reference, directions, **options), n, m, distance)


def noise_floor(exact_sampler, n: int, *, distance: str = "sliced_wasserstein", num_reference: int | None = None,
                generator: torch.Generator | None = None, num_projections: int = 256, **options) -> float:
    """The distance between two independent exact sample sets of sizes ``n`` and ``num_reference`` (default n).

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> sampler = lambda n, generator=None: torch.randn(n, 2, generator=generator)
    >>> 0 < noise_floor(sampler, 200, generator=g) < 0.3
    True
    """
    first = _draw(exact_sampler, int(n), generator)
    return distance_to_reference(first, exact_sampler, distance=distance, num_reference=num_reference,
                                 generator=generator, num_projections=num_projections, **options).floor
