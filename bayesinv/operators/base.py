"""Operator contracts: ``Operator`` (forward only) and ``LinearOperator`` (adjoint, pinv, ...).

An operator maps a batch of images ``x: (B, *in_shape)`` to measurements ``(B, *out_shape)``.
Subclasses implement ``_forward`` (and ``_adjoint`` for linear operators); the public methods check
shapes, dtypes and finiteness once, here, so every operator reports bad input the same way.

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

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from bayesinv._validation import check_batch_shape

__all__ = ["Operator", "LinearOperator", "SVD", "inner", "conjugate_gradient", "operator_norm_squared"]


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
        check_batch_shape(name, x, self.in_shape, complex_ok=self.input_complex)
        if self.input_complex and not x.is_complex():
            x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
        return x

    def _check_output(self, y: torch.Tensor, name: str = "y") -> torch.Tensor:
        check_batch_shape(name, y, self.out_shape, complex_ok=self.output_complex)
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
