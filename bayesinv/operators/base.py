"""Operator contracts: ``Operator`` (forward only) and ``LinearOperator`` (adjoint, pinv, ...).

An operator maps a batch of images ``x: (B, *in_shape)`` to measurements ``(B, *out_shape)``.
Subclasses implement ``_forward`` (and ``_adjoint`` for linear operators); the public methods check
shapes, dtypes and finiteness once, here, so every operator reports bad input the same way.

Tensors and devices
-------------------
Masks, kernels, matrices and coil maps are *registered* (:meth:`Operator.register_tensor`), so
:meth:`Operator.to` moves them all (``op.to("cuda")``, ``op.to(torch.float32)``). Quantities derived
from them (a kernel's FFT, a mask in the image's dtype) are computed once per dtype and device and
cached (:meth:`Operator._derived`); the cache is dropped when a registered tensor is replaced or
changed in place, and skipped for tensors that need a gradient (a blind-deblur kernel).

Finiteness checks
-----------------
The NaN/inf check of the public methods is one reduction (the full count only on failure). Inside a
sampler loop, where the engine checks its state at the end of a step, wrap the loop in
``with finite_checks(False):``; on a GPU this removes a host synchronisation per operator call.
Shape and dtype checks always run (they cost no synchronisation).

Real and complex
----------------
``input_complex`` says whether the operator acts on complex images (MRI). A real image passed to a
complex-input operator is promoted (a real image is a complex image); a complex image passed to a
real-input operator is an error. The adjoint is taken with respect to the real inner product
``Re <a, b>`` on real spaces and the complex one ``<a, b> = sum(conj(a) * b)`` on complex spaces,
so that ``Re <A x, y> = Re <x, A^H y>`` always holds.

SVD
---
Operators with a cheap SVD expose :meth:`LinearOperator.svd` returning :class:`SVD`, the contract of
DDRM (Kawar et al. 2022): ``A = U diag(s) V^H`` with functions ``Vt(x) -> (B, n)`` spectral
coefficients, ``V`` its inverse, ``Ut(y) -> (B, m)``, ``U`` its inverse, and singular values
``s: (r,)`` that belong to the first ``r`` coefficients (``r <= min(m, n)``; the rest are zero).
"""

from __future__ import annotations

import cmath
import contextvars
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from bayesinv._validation import check_batch_shape
from bayesinv.errors import NonFiniteError

__all__ = ["Operator", "LinearOperator", "SVD", "GramDiagonal", "gram_function", "inner", "conjugate_gradient",
           "finite_checks", "finite_checks_enabled", "check_finite_fast", "operator_norm_squared"]

_FINITE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("bayesinv_finite_checks", default=True)


class finite_checks:  # noqa: N801  (used like a function: ``with finite_checks(False):``)
    """Turn the NaN/inf checks of operator calls on or off inside a ``with`` block (on by default).

    A plain class rather than a ``contextlib`` generator: entering and leaving costs two context-variable
    calls, which matters where a caller wraps every operator call.

    >>> import torch
    >>> from bayesinv.operators import Inpaint
    >>> op = Inpaint((1, 2, 2), torch.ones(2, 2, dtype=torch.bool))
    >>> with finite_checks(False):
    ...     bool(op(torch.full((1, 1, 2, 2), float("nan"))).isnan().all())
    True
    """

    __slots__ = ("enabled", "_tokens")

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)
        self._tokens: list[contextvars.Token] = []  # a stack, so one instance may be entered again while open

    def __enter__(self) -> None:
        self._tokens.append(_FINITE_CHECKS.set(self.enabled))

    def __exit__(self, *exc: object) -> None:
        _FINITE_CHECKS.reset(self._tokens.pop())


def finite_checks_enabled() -> bool:
    """Whether operator calls check their input for NaN/inf (see :func:`finite_checks`)."""
    return _FINITE_CHECKS.get()


def check_finite_fast(name: str, value: torch.Tensor) -> torch.Tensor:
    """Raise :class:`NonFiniteError` if ``value`` holds NaN or inf, with one reduction and no temporary mask.

    The sum of finite values is finite unless it overflows; only then (or on NaN/inf) is the exact
    element-wise check run, which counts the offending entries.
    """
    if cmath.isfinite((value.detach() if value.requires_grad else value).sum().item()):
        return value
    finite = torch.isfinite(value.detach())
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteError(f"{name} contains {bad} non-finite value(s) (NaN or inf) of {value.numel()}")
    return value


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product ``Re sum(conj(a) * b)`` over all but the batch dimension: ``(B,)``."""
    prod = a.conj() * b if (a.is_complex() or b.is_complex()) else a * b
    return prod.reshape(prod.shape[0], -1).sum(dim=1).real


class SVD(NamedTuple):
    """Singular value decomposition of a linear operator given as functions (see module docstring)."""

    singulars: torch.Tensor  # (r,) non-negative, aligned with the first r spectral coefficients
    V: Callable[[torch.Tensor], torch.Tensor]  # (B, n) -> (B, *in_shape)
    Vt: Callable[[torch.Tensor], torch.Tensor]  # (B, *in_shape) -> (B, n)
    U: Callable[[torch.Tensor], torch.Tensor]  # (B, m) -> (B, *out_shape)
    Ut: Callable[[torch.Tensor], torch.Tensor]  # (B, *out_shape) -> (B, m)


class GramDiagonal(NamedTuple):
    """The real-space Gram ``A^T A`` of an operator on real images (``Re A^H A``) as a diagonal in a fast unitary
    basis: ``A^T A = T^H diag(values) T`` with ``T`` the identity (``basis="pixel"``) or the orthonormal 2-D DFT
    in the uncentred ``fft2`` layout (``basis="fourier"``; ``values`` is then symmetric, ``v[k] = v[-k]``).
    :func:`gram_function` applies any ``f(A^T A)`` exactly with it."""

    basis: str
    values: torch.Tensor  # (*in_shape) real, non-negative


def gram_function(gram: GramDiagonal, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``f(A^T A) x`` for real images ``x: (B, *in_shape)``, exactly (``f`` acts elementwise on the eigenvalues)."""
    values = f(gram.values.to(device=x.device, dtype=x.dtype))
    if gram.basis == "pixel":
        return values * x
    h, w = x.shape[-2:]
    return torch.fft.irfft2(values[..., : w // 2 + 1] * torch.fft.rfft2(x, norm="ortho"), s=(h, w), norm="ortho")


class Operator:
    """A forward model ``A: (B, *in_shape) -> (B, *out_shape)``.

    Parameters
    ----------
    in_shape : per-sample image shape, usually ``(C, H, W)``.
    out_shape : per-sample measurement shape.
    input_complex : whether images are complex (see module docstring).
    output_complex : whether measurements are complex.
    """

    linear: bool = False

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], *, input_complex: bool = False,
                 output_complex: bool = False):
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.input_complex = bool(input_complex)
        self.output_complex = bool(output_complex)

    # -- registered tensors and derived caches ----------------------------------------------------
    def register_tensor(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Store ``value`` as attribute ``name`` and let :meth:`to` move it; clears the derived caches."""
        names = self.__dict__.setdefault("_tensor_names", [])
        if name not in names:
            names.append(name)
        self.__dict__[name] = value
        self.__dict__["_derived_cache"] = {}
        self._tensors_changed()
        return value

    def _tensors_changed(self) -> None:
        """Hook for subclasses that cache more than :meth:`_derived` does (an SVD, a pseudo-inverse)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_tensor_names", ()):
            self.register_tensor(name, value)  # replacing a kernel or mask drops what was derived from it
        else:
            super().__setattr__(name, value)

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The registered tensors (masks, kernels, matrices, coil maps) by name."""
        return {name: self.__dict__[name] for name in self.__dict__.get("_tensor_names", [])}

    @property
    def device(self) -> torch.device:
        """Where the operator's tensors live: that of its first registered tensor, else the last device given
        to :meth:`to` (an operator without tensors, e.g. the identity), else the CPU. Tensors an operator
        creates for itself (singular values, permutations) are created here."""
        for value in self.tensors.values():
            return value.device
        return self.__dict__.get("_device", torch.device("cpu"))

    def to(self, *args: Any, **kwargs: Any) -> Operator:
        """Move every registered tensor (and those of operators held as attributes), in place, and return
        ``self`` (like ``torch.nn.Module.to``).

        Accepts ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` and the keywords ``device=``,
        ``dtype=``. A real dtype sets the precision: real floating tensors take it, complex ones take
        the complex dtype of the same precision; boolean and integer tensors (masks, indices) only
        change device.
        """
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = torch.device(arg)
        if dtype is not None and not dtype.is_floating_point and not dtype.is_complex:
            raise TypeError(f"to() needs a floating-point or complex dtype, got {dtype}")
        real = None if dtype is None else (dtype if dtype.is_floating_point else dtype.to_real())
        if device is not None:
            self.__dict__["_device"] = device
        for name, value in self.tensors.items():
            target = None
            if real is not None and value.is_floating_point():
                target = real
            elif real is not None and value.is_complex():
                target = real.to_complex()
            self.register_tensor(name, value.to(device=device if device is not None else value.device,
                                                dtype=target if target is not None else value.dtype))
        for value in list(self.__dict__.values()):  # operators this one wraps
            if isinstance(value, Operator) and value is not self:
                value.to(device=device, dtype=dtype)
        return self

    def _derived(self, key: str, dtype: torch.dtype, device: torch.device, build: Callable[[], torch.Tensor],
                 *sources: torch.Tensor, on_graph: bool = True) -> torch.Tensor:
        """``build()`` cached per ``(key, dtype, device)`` and the identity and version of ``sources``.

        With ``on_graph`` (the result is differentiable in the sources), nothing is cached when a source
        needs a gradient and grad mode is on: the result must stay on the autograd graph.
        """
        if on_graph and torch.is_grad_enabled():
            for source in sources:
                if source.requires_grad:
                    return build()
        cache = self.__dict__.setdefault("_derived_cache", {})
        stamp = tuple([(id(source), source._version) for source in sources])
        full_key = (key, dtype, device)
        hit = cache.get(full_key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = build()
        cache[full_key] = (stamp, value)
        return value

    # -- public API ---------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator to a batch ``x: (B, *in_shape)``."""
        return self._forward(self._check_input(x))

    @property
    def in_dim(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_dim(self) -> int:
        return math.prod(self.out_shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape})"

    # -- to implement -------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        if not (isinstance(x, torch.Tensor) and x.shape[1:] == self.in_shape
                and (x.is_floating_point() or (self.input_complex and x.is_complex()))):
            check_batch_shape(name, x, self.in_shape, complex_ok=self.input_complex, finite=False)  # raises
        if _FINITE_CHECKS.get():
            check_finite_fast(name, x)
        if self.input_complex and not x.is_complex():
            x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
        return x

    def _check_output(self, y: torch.Tensor, name: str = "y") -> torch.Tensor:
        if not (isinstance(y, torch.Tensor) and y.shape[1:] == self.out_shape
                and (y.is_floating_point() or (self.output_complex and y.is_complex()))):
            check_batch_shape(name, y, self.out_shape, complex_ok=self.output_complex, finite=False)  # raises
        if _FINITE_CHECKS.get():
            check_finite_fast(name, y)
        if self.output_complex and not y.is_complex():
            y = y.to(torch.complex128 if y.dtype == torch.float64 else torch.complex64)
        return y

    def input_dtype(self, real_dtype: torch.dtype = torch.float64) -> torch.dtype:
        """The dtype images have for this operator at the given real precision."""
        if not self.input_complex:
            return real_dtype
        return torch.complex128 if real_dtype == torch.float64 else torch.complex64

    def output_dtype(self, real_dtype: torch.dtype = torch.float64) -> torch.dtype:
        if not self.output_complex:
            return real_dtype
        return torch.complex128 if real_dtype == torch.float64 else torch.complex64


class LinearOperator(Operator):
    """A linear operator: adds ``adjoint``, ``normal``, ``pinv``, ``to_matrix`` and optionally ``svd``.

    Subclasses implement ``_forward`` and ``_adjoint``. ``pinv`` defaults to the minimum-norm solution
    ``A^H (A A^H)^{-1} y`` by conjugate gradients in measurement space (exact for full-row-rank A,
    the least-squares min-norm solution otherwise, since CG on a consistent singular system started
    at zero stays in the range); subclasses with an SVD or a closed form override ``_pinv``.
    """

    linear = True

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply ``A^H`` to measurements ``y: (B, *out_shape)``."""
        out = self._adjoint(self._check_output(y))
        if not self.input_complex and out.is_complex():
            out = out.real
        return out

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self.adjoint(self.forward(x))

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Minimum-norm least-squares solution ``A^+ y``: ``(B, *in_shape)``."""
        return self._pinv(self._check_output(y))

    def svd(self) -> SVD:
        """The operator's SVD as functions; raises ``NotImplementedError`` where it is not cheap."""
        raise NotImplementedError(f"{type(self).__name__} has no cheap SVD; use CG-based methods instead")

    def svd_or_none(self) -> SVD | None:
        """:meth:`svd`, or ``None`` where the operator has no cheap one (one call where ``has_svd`` + ``svd``
        make two)."""
        try:
            return self.svd()
        except NotImplementedError:
            return None

    @property
    def has_svd(self) -> bool:
        return self.svd_or_none() is not None

    def gram_diagonal(self) -> GramDiagonal | None:
        """``A^T A`` on real images as a diagonal in pixels or Fourier (:class:`GramDiagonal`), or ``None`` where the
        operator has no such form (then functions of ``A^T A`` take polynomials in :meth:`normal`)."""
        return None

    def to_matrix(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        """Dense matrix ``(out_dim, in_dim)`` with ``A(x).flatten() = M @ x.flatten()`` (small sizes only).

        For a real-input operator with complex output the matrix is complex and applies to real x.
        """
        n = self.in_dim
        if n > 16384:
            raise ValueError(f"to_matrix() is for small operators; in_dim={n} > 16384")
        eye = torch.eye(n, dtype=self.input_dtype(dtype), device=device).reshape(n, *self.in_shape)
        cols = []
        for chunk in eye.split(1024):
            cols.append(self.forward(chunk).reshape(chunk.shape[0], -1))
        return torch.cat(cols).T.contiguous()

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _pinv(self, y: torch.Tensor) -> torch.Tensor:
        z = conjugate_gradient(lambda v: self.forward(self.adjoint(v)), y, max_iter=4 * self.out_dim)
        return self.adjoint(z)

    def _zeros_in(self, like: torch.Tensor) -> torch.Tensor:
        dtype = self.input_dtype(like.real.dtype)
        return torch.zeros(like.shape[0], *self.in_shape, dtype=dtype, device=like.device)


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, x0: torch.Tensor | None = None,
                       max_iter: int = 200, rtol: float = 1e-10) -> torch.Tensor:
    """Solve ``M x = b`` for a Hermitian positive (semi-)definite ``M`` given as ``apply``, per batch item.

    Standard CG (Hestenes & Stiefel 1952) run on every batch item in parallel; stops when every
    item's residual norm is below ``rtol * ||b||``.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rs = inner(r, r)
    b_norm2 = inner(b, b).clamp_min(torch.finfo(rs.dtype).tiny)
    shape = (-1,) + (1,) * (b.ndim - 1)
    for _ in range(max_iter):
        if bool((rs <= rtol**2 * b_norm2).all()):
            break
        Mp = apply(p)
        denom = inner(p, Mp)
        alpha = torch.where(denom > 0, rs / denom.clamp_min(torch.finfo(rs.dtype).tiny), torch.zeros_like(rs))
        x = x + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * Mp
        rs_new = inner(r, r)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(torch.finfo(rs.dtype).tiny), torch.zeros_like(rs))
        p = r + beta.reshape(shape) * p
        rs = rs_new
    return x


def operator_norm_squared(op: LinearOperator, like: torch.Tensor, *, generator: torch.Generator,
                          iterations: int = 50) -> float:
    """``||A||^2`` (the largest eigenvalue of ``A^H A``): ``max s^2`` from the SVD where there is one, else power
    iteration from a random start drawn from ``generator``, in ``like``'s real dtype and on its device."""
    svd = op.svd_or_none()
    if svd is not None:
        return float(svd.singulars.max()) ** 2 if svd.singulars.numel() else 0.0
    dtype = like.real.dtype if like.is_complex() else like.dtype
    v = torch.randn((1, *op.in_shape), generator=generator, dtype=torch.float64, device=generator.device)
    v = v.to(device=like.device, dtype=dtype)
    v = v / v.norm()
    value = 0.0
    for _ in range(iterations):
        w = op.normal(v)
        value = float(w.abs().norm())
        if value == 0:
            return 0.0
        v = w / value
    return value
