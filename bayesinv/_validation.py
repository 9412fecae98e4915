"""Input checks shared by operators, noise models, priors and samplers (one place for each check)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayesinv.errors import DTypeError, NonFiniteError, ShapeError

__all__ = ["check_tensor", "check_batch_shape", "check_finite", "as_real_dtype"]


def check_tensor(name: str, value) -> torch.Tensor:
    """Return ``value`` if it is a tensor, else raise a ``TypeError`` naming ``name``."""
    if not isinstance(value, torch.Tensor):
        raise DTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    """Raise :class:`NonFiniteError` if ``value`` holds NaN or inf (counts how many)."""
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteError(f"{name} contains {bad} non-finite value(s) (NaN or inf) of {value.numel()}")
    return value


def check_batch_shape(name: str, value: torch.Tensor, shape: Sequence[int], *, complex_ok: bool = True,
                      finite: bool = True) -> torch.Tensor:
    """Check that ``value`` is a tensor of shape ``(B, *shape)`` with B >= 1.

    Parameters
    ----------
    name : the argument's name, used in the error message.
    shape : the expected per-sample shape.
    complex_ok : if False, complex values raise :class:`DTypeError`.
    finite : if True, NaN/inf raise :class:`NonFiniteError`.
    """
    check_tensor(name, value)
    shape = tuple(int(s) for s in shape)
    if value.ndim != len(shape) + 1 or tuple(value.shape[1:]) != shape:
        raise ShapeError(f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(value.shape)}")
    if value.is_complex() and not complex_ok:
        raise DTypeError(f"{name} is complex ({value.dtype}) but a real tensor is expected here")
    if not (value.is_floating_point() or value.is_complex()):
        raise DTypeError(f"{name} must be a floating-point or complex tensor, got {value.dtype}")
    if finite:
        check_finite(name, value)
    return value


def as_real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype with the precision of ``dtype`` (complex128 -> float64, ...)."""
    return torch.empty((), dtype=dtype).real.dtype if dtype.is_complex else dtype
