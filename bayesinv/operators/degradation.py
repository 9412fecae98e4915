r"""Degradation schedules ``t -> A_t`` of Dirac (Fabian, Tinaz & Soltanolkotabi 2024, ICML).

Dirac models a measurement as the end point ``t = 1`` of a stochastic degradation process that starts at
the clean image (``t = 0``)::

    y_t = A_t(x0) + z_t,     z_t ~ N(0, sigma_t^2 I),     A_0 = I,     A_1 = the problem's operator,

with the geometric noise schedule of the authors' code, ``sigma_t = sigma_min (sigma_max / sigma_min)^t``
(:class:`GeometricNoise`; ``sigma_max`` is the measurement noise). Every ``A_t`` acts image -> image
(the same shape), as in the reference implementation (``data/operators.py`` of ``z-fabian/dirac-diffusion``):

* :class:`BlurDegradation`: circular Gaussian blur ``Blur.gaussian(in_shape, std(t), size)`` whose width grows
  from ``std(0) = 0`` (the identity, exactly) to the target width ``std(1)``. ``std(t)`` is piecewise linear
  through knots ``(t_k, std_k)``: ``"linear"`` (two knots), or a table that makes the degradation *severity*
  ``E ||A_t x - x||^2`` grow linearly in ``t`` on training images (:func:`blur_severity_schedule`), the
  paper's "degradation scheduling" (the reference ships such a table, ``configs/schedules/blur_schedule.txt``).
* :class:`InpaintDegradation`: a soft mask ``A_t x = m_t * x`` that fades the missing pixels of the target
  mask out one group at a time: group ``g`` of ``G`` fades linearly from 1 to 0 during ``[g/G, (g+1)/G]``,
  so ``m_0 = 1`` and ``m_1`` is the target 0/1 mask (the reference's growing box with its linearly fading
  rim, generalised to any mask). ``order="random"`` removes the missing pixels one by one in a random order
  (random-pixel masks); ``order="center_out"`` removes Chebyshev rings around the centre of the missing
  region (box masks, as the reference's centre box). The target in problem form is an
  :class:`~bayesinv.operators.inpaint.Inpaint` ``S``; the Dirac form of its measurement is the masked image
  ``A_1 = S^T S`` with noise on every pixel (:meth:`Degradation.embed_measurement`).

``apply(x, t)`` accepts one time or one time per batch item (training); ``operator_at(t)`` returns the
``LinearOperator`` ``A_t`` (which passes the operator registry checks).

>>> import torch
>>> mask = torch.ones(1, 4, 4, dtype=torch.bool); mask[0, 1:3, 1:3] = False
>>> deg = InpaintDegradation((1, 4, 4), mask, order="center_out")
>>> x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
>>> float(deg.apply(x, 0.0).sum()), float(deg.apply(x, 1.0).sum())
(16.0, 12.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from bayesinv._validation import check_batch_shape
from bayesinv.errors import ShapeError
from bayesinv.operators.base import SVD, LinearOperator, Operator

__all__ = ["GeometricNoise", "Degradation", "MaskOperator", "InpaintDegradation", "BlurDegradation",
           "blur_severity_schedule", "degradation_from_config", "check_time"]


def check_time(name: str, t) -> torch.Tensor | float:
    """Return ``t`` (a float or a tensor) after checking that it lies in ``[0, 1]``."""
    if isinstance(t, torch.Tensor):
        if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError(f"{name} must lie in [0, 1], got values in [{float(t.min())}, {float(t.max())}]")
        return t
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {t}")
    return t


class GeometricNoise(NamedTuple):
    """``sigma_t = sigma_min (sigma_max / sigma_min)^t`` (the reference's ``NoiseScheduler``)."""

    sigma_min: float
    sigma_max: float

    def std(self, t):
        """``sigma_t`` for a float or a tensor ``t`` in ``[0, 1]``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    @staticmethod
    def create(sigma_min: float, sigma_max: float) -> GeometricNoise:
        if not 0 < sigma_min <= sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        return GeometricNoise(float(sigma_min), float(sigma_max))


def _per_item(t, batch: int, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a ``(B, 1, ..., 1)`` tensor broadcastable against ``like: (B, C, H, W)``."""
    t = torch.as_tensor(t, dtype=like.real.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ShapeError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t.reshape(batch, *([1] * (like.ndim - 1)))


class Degradation:
    """A schedule of image-to-image linear operators ``A_t``, ``t in [0, 1]``, with ``A_0 = I``.

    Subclasses implement ``operator_at(t)``, ``_apply(x, t)`` (``t``: ``(B, 1, 1, 1)``), ``config()``,
    and say how the problem's operator relates to ``A_1`` (:meth:`target_form`).
    """

    kind: str = ""

    def __init__(self, in_shape: Sequence[int]):
        self.in_shape = tuple(int(s) for s in in_shape)

    def operator_at(self, t: float) -> LinearOperator:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, t) -> torch.Tensor:
        """``A_t(x)`` for ``x: (B, *in_shape)`` and ``t`` a float or a ``(B,)`` tensor in ``[0, 1]``."""
        check_batch_shape("x", x, self.in_shape, complex_ok=False)
        t = check_time("t", t)
        return self._apply(x, _per_item(t, x.shape[0], x))

    def _apply(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """A TOML/JSON-serialisable description; :func:`degradation_from_config` inverts it."""
        raise NotImplementedError

    def target_form(self, operator: LinearOperator) -> LinearOperator:
        """``A_1`` expressed through the problem's operator (``operator`` itself, or ``S^T S`` for a selection)."""
        return operator

    def check_target(self, operator: Operator, *, atol: float = 1e-6) -> None:
        """Raise a clear ``ValueError`` unless the problem's ``operator`` is this schedule's ``A_1``.

        Compared on a fixed random probe image: ``operator(x) = A_1(x)`` for image-to-image operators,
        ``S^T S x = A_1(x)`` for selections whose output is the observed pixels.
        """
        if not isinstance(operator, LinearOperator) or tuple(operator.in_shape) != self.in_shape:
            raise ValueError(f"the problem's operator {operator!r} is not the model's {self.kind} degradation at t=1 "
                             f"(expected a linear operator on images of shape {self.in_shape})")
        probe = torch.rand((2, *self.in_shape), generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
        expected = self.apply(probe, 1.0)
        if tuple(operator.out_shape) == self.in_shape:
            got = operator(probe)
        else:
            got = operator.adjoint(operator(probe))
        if got.shape != expected.shape or not torch.allclose(got.to(expected.dtype), expected, atol=atol, rtol=0):
            err = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
            raise ValueError(f"the problem's operator {operator!r} differs from the model's {self.kind} degradation "
                             f"at t=1 {self.describe()} (max difference {err:.3g} on a probe image): this Dirac "
                             f"network was trained for another operator")

    def describe(self) -> str:
        return str(self.config())

    def embed_measurement(self, y: torch.Tensor, operator: LinearOperator, noise_std: float,
                          noise: torch.Tensor) -> torch.Tensor:
        """The process state ``y_1 = A_1(x0) + z_1`` from a problem measurement ``y`` (``(1, *out_shape)``).

        For an image-to-image operator ``y`` already is ``y_1``. For a selection ``S`` (observed pixels),
        ``y_1 = S^T y + noise_std (I - S^T S) noise``: the missing pixels of ``A_1(x0) = S^T S x0`` are zero
        and carry pure noise, so ``y_1`` has exactly the law of the process at ``t = 1``.
        """
        if tuple(operator.out_shape) == self.in_shape:
            return y.expand(noise.shape[0], *y.shape[1:]).clone()
        back = operator.adjoint(y)
        null = noise - operator.adjoint(operator(noise))
        return back + noise_std * null


class MaskOperator(LinearOperator):
    """``A x = m * x`` for a fixed (soft) mask ``m`` in ``[0, 1]``, shape ``in_shape``: self-adjoint and diagonal.

    SVD: ``V = U`` the pixel basis with the positive mask values first (``singulars = m`` there).
    """

    def __init__(self, mask: torch.Tensor):
        self.register_tensor("mask", mask.detach().to(torch.float64))
        super().__init__(mask.shape, mask.shape)
        flat = self.mask.reshape(-1)
        self.register_tensor("_order", torch.argsort(-(flat > 0).to(torch.int8), stable=True))  # move with .to
        self.register_tensor("_inverse", torch.argsort(self._order))
        self._rank = int((flat > 0).sum())

    def _m(self, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype
        return self._derived("mask", dtype, like.device, lambda: self.mask.to(device=like.device, dtype=dtype),
                             self.mask)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._m(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._m(y)

    def _pinv(self, y: torch.Tensor) -> torch.Tensor:
        m = self._m(y)
        return torch.where(m > 0, y / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(y))

    def svd(self) -> SVD:
        order, inverse, shape = self._order, self._inverse, self.in_shape
        singulars = self.mask.reshape(-1)[order][: self._rank]

        def vt(x):
            return x.reshape(x.shape[0], -1)[:, order.to(x.device)]

        def v(c):
            return c[:, inverse.to(c.device)].reshape(c.shape[0], *shape)

        return SVD(singulars, v, vt, v, vt)


class InpaintDegradation(Degradation):
    """Missing pixels fade out group by group (see the module docstring).

    Parameters
    ----------
    in_shape : ``(C, H, W)``.
    observed : bool mask of the target, ``(H, W)`` or ``(C, H, W)``, True where the pixel is observed.
    order : ``"random"`` (one pixel at a time in a random order drawn from ``seed``), ``"center_out"`` (rings
        of equal Chebyshev distance to the centre of the missing region, innermost first), or an integer tensor
        of group indices for the missing pixels (``groups[~observed]``, any non-negative ints).
    seed : seed of the random order.
    """

    kind = "inpaint"

    def __init__(self, in_shape: Sequence[int], observed: torch.Tensor, *, order: str | torch.Tensor = "random",
                 seed: int = 0):
        super().__init__(in_shape)
        observed = torch.as_tensor(observed).bool().cpu()
        if observed.ndim == 2:
            observed = observed.expand(self.in_shape[0], *observed.shape)
        if tuple(observed.shape) != self.in_shape:
            raise ShapeError(f"observed must have shape {self.in_shape[1:]} or {self.in_shape}, "
                             f"got {tuple(observed.shape)}")
        self.observed = observed.clone()
        self.order = order if isinstance(order, str) else "custom"
        self.seed = int(seed)
        missing = ~observed
        count = int(missing.sum())
        groups = torch.zeros(self.in_shape, dtype=torch.long)
        if count:
            if isinstance(order, torch.Tensor):
                keys = torch.as_tensor(order).reshape(self.in_shape)[missing].to(torch.float64)
            elif order == "random":
                keys = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed)).to(torch.float64)
            elif order == "center_out":
                idx = missing.nonzero().to(torch.float64)  # (n, 3): channel, row, col
                centre = idx[:, 1:].mean(0)
                keys = (idx[:, 1:] - centre).abs().max(1).values.floor()
            else:
                raise ValueError(f"order must be 'random', 'center_out' or a tensor of groups, got {order!r}")
            groups[missing] = torch.unique(keys, return_inverse=True)[1]
        self.groups = groups
        self.num_groups = int(groups[missing].max()) + 1 if count else 1

    def mask(self, t) -> torch.Tensor:
        """``m_t``: ``(*in_shape)`` for a float ``t``, ``(B, *in_shape)`` for a ``(B,)`` tensor."""
        t = check_time("t", t)
        tt = torch.as_tensor(t, dtype=torch.float64)
        shaped = tt.reshape(*tt.shape, *([1] * len(self.in_shape)))
        return self._mask(shaped, torch.float64, tt.device)

    def _mask(self, t: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
        groups = self.groups.to(device=device, dtype=dtype)
        fade = (1 - (t * self.num_groups - groups)).clamp(0, 1)
        return torch.where(self.observed.to(device), torch.ones_like(fade), fade)

    def operator_at(self, t: float) -> MaskOperator:
        return MaskOperator(self.mask(float(check_time("t", t))))

    def _apply(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * self._mask(t, x.dtype, x.device)

    def target_form(self, operator: LinearOperator) -> LinearOperator:
        return operator if tuple(operator.out_shape) == self.in_shape else MaskOperator(self.observed.double())

    def config(self) -> dict[str, Any]:
        cfg = {"kind": self.kind, "in_shape": list(self.in_shape), "order": self.order, "seed": self.seed,
               "observed": self.observed.to(torch.int8).reshape(-1).tolist()}
        if self.order == "custom":
            cfg["groups"] = self.groups.reshape(-1).tolist()
        return cfg

    def describe(self) -> str:
        return (f"(inpainting, {int((~self.observed).sum())} missing of {self.observed.numel()} values, "
                f"order {self.order!r})")


class BlurDegradation(Degradation):
    """Gaussian blur of width ``std(t)``, piecewise linear through ``knots`` (module docstring).

    Parameters
    ----------
    in_shape : ``(C, H, W)``.
    std : the target width ``std(1)`` in pixels (the problem's ``Blur.gaussian(in_shape, std, size)``).
    size : the odd kernel size, fixed for every ``t`` (default: :func:`~bayesinv.operators.blur.default_gaussian_size`
        of ``std``, the size the target operator gets by default).
    knots : ``[(t_0 = 0, s_0 = 0), ..., (t_K = 1, s_K = 1)]``, the *relative* width ``std(t) / std`` at
        increasing times; default linear ``[(0, 0), (1, 1)]``. :func:`blur_severity_schedule` computes the
        severity-linear table.
    """

    kind = "blur"

    def __init__(self, in_shape: Sequence[int], std: float, *, size: int | None = None,
                 knots: Sequence[Sequence[float]] | None = None):
        from bayesinv.operators.blur import default_gaussian_size

        super().__init__(in_shape)
        if not std > 0:
            raise ValueError(f"std must be positive (the target blur width), got {std}")
        self.std = float(std)
        self.size = int(size) if size is not None else default_gaussian_size(self.std, min(self.in_shape[1:]))
        knots = [(0.0, 0.0), (1.0, 1.0)] if knots is None else [(float(a), float(b)) for a, b in knots]
        times = torch.tensor([k[0] for k in knots], dtype=torch.float64)
        rel = torch.tensor([k[1] for k in knots], dtype=torch.float64)
        if (len(knots) < 2 or times[0] != 0 or times[-1] != 1 or rel[0] != 0 or rel[-1] != 1
                or not bool((times[1:] > times[:-1]).all()) or not bool((rel[1:] >= rel[:-1]).all())):
            raise ValueError("knots must go from (0, 0) to (1, 1) with increasing times and non-decreasing widths, "
                             f"got {knots}")
        self.knots = knots
        self._times, self._rel = times, rel

    def width(self, t) -> torch.Tensor:
        """``std(t)`` (float64) for a float or a tensor ``t`` in ``[0, 1]`` (linear interpolation of the knots)."""
        t = torch.as_tensor(check_time("t", t), dtype=torch.float64).detach().cpu()
        idx = torch.searchsorted(self._times, t.clamp(0, 1), right=True).clamp(1, len(self._times) - 1)
        t0, t1 = self._times[idx - 1], self._times[idx]
        r0, r1 = self._rel[idx - 1], self._rel[idx]
        return self.std * (r0 + (r1 - r0) * (t - t0) / (t1 - t0))

    def operator_at(self, t: float):
        from bayesinv.operators.blur import Blur

        return Blur.gaussian(self.in_shape, self.width(float(check_time("t", t))), self.size)

    def _apply(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        from bayesinv.operators.blur import Blur

        widths = self.width(t.reshape(-1))
        if bool((widths == widths[0]).all()):
            out = Blur.gaussian(self.in_shape, widths[0], self.size)(x)
        else:
            out = Blur.gaussian(self.in_shape, widths, self.size)(x)
        clean = (widths == 0).to(x.device).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(clean, x, out)  # A_0 = I exactly (the FFT round trip is only exact to ~1e-16)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "in_shape": list(self.in_shape), "std": self.std, "size": self.size,
                "knots": [list(k) for k in self.knots]}

    def describe(self) -> str:
        return f"(Gaussian blur std={self.std}, kernel size {self.size})"


def blur_severity_schedule(images: torch.Tensor, std: float, *, size: int | None = None, num_knots: int = 21,
                           grid: int = 401) -> list[list[float]]:
    r"""Knots of a blur schedule whose severity ``E ||A_t x - x||^2`` grows linearly in ``t`` on ``images``.

    The paper's degradation scheduling: with ``S(s) = mean_x ||G_s x - x||^2`` (increasing in the width
    ``s``), the knots are ``t_k = k / (K - 1)`` and ``s_k = S^{-1}(t_k S(std))``, found by linear
    interpolation of ``S`` on ``grid`` widths in ``[0, std]``. Returns ``[[t_k, s_k / std], ...]`` for
    :class:`BlurDegradation` (``knots=``).
    """
    from bayesinv.operators.blur import Blur

    check_batch_shape("images", images, images.shape[1:], complex_ok=False)
    widths = torch.linspace(0, std, grid, dtype=torch.float64)
    x = images.to(torch.float64)
    deg = BlurDegradation(images.shape[1:], std, size=size)
    severity = torch.stack([((Blur.gaussian(deg.in_shape, w, deg.size)(x) - x) ** 2).sum((1, 2, 3)).mean()
                            for w in widths])
    severity = torch.cummax(severity, 0).values / severity[-1]
    knots = []
    for k in range(num_knots):
        level = k / (num_knots - 1)
        j = int(torch.searchsorted(severity, torch.tensor(level, dtype=torch.float64)).clamp(1, grid - 1))
        s0, s1 = float(severity[j - 1]), float(severity[j])
        frac = 0.0 if s1 == s0 else (level - s0) / (s1 - s0)
        rel = float(widths[j - 1] + frac * (widths[j] - widths[j - 1])) / std
        knots.append([level, min(max(rel, 0.0), 1.0)])
    knots[0], knots[-1] = [0.0, 0.0], [1.0, 1.0]
    for k in range(1, num_knots):
        knots[k][1] = max(knots[k][1], knots[k - 1][1])
    return knots


def degradation_from_config(config: Mapping[str, Any]) -> Degradation:
    """Rebuild a degradation from :meth:`Degradation.config` (e.g. a model's ``config.toml``).

    Inpainting masks may also be given as ``mask = "random"`` with ``fraction_missing`` and ``mask_seed``
    (:func:`~bayesinv.operators.inpaint.random_mask` on ``(H, W)``) or ``mask = "box"`` with ``box``.
    """
    kind = config.get("kind")
    shape = tuple(int(s) for s in config["in_shape"])
    if kind == "blur":
        return BlurDegradation(shape, float(config["std"]), size=config.get("size"), knots=config.get("knots"))
    if kind == "inpaint":
        if "observed" in config:
            observed = torch.tensor(config["observed"], dtype=torch.bool).reshape(shape)
        elif config.get("mask") == "random":
            from bayesinv.operators.inpaint import random_mask

            gen = torch.Generator().manual_seed(int(config.get("mask_seed", 0)))
            observed = random_mask(shape[1:], float(config["fraction_missing"]), gen)
        elif config.get("mask") == "box":
            from bayesinv.operators.inpaint import box_mask

            observed = box_mask(shape[1:], config["box"])
        else:
            raise ValueError("an inpainting degradation needs 'observed', or mask = 'random' | 'box' with its options")
        order = config.get("order", "random")
        if order == "custom":
            order = torch.tensor(config["groups"]).reshape(shape)
        return InpaintDegradation(shape, observed, order=order, seed=int(config.get("seed", 0)))
    raise ValueError(f"unknown degradation kind {kind!r}; choose 'blur' or 'inpaint'")
