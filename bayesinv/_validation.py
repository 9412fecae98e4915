"""Input checks shared by operators, noise models, priors and samplers (one place for each check)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayesinv.errors import DTypeError, NonFiniteError, ShapeError

__all__ = ["check_tensor", "check_batch_shape", "check_finite", "as_real_dtype", "check_choice", "check_positive",
           "check_mask", "check_image_shape"]


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


def check_choice(name: str, value, choices) -> None:
    """Raise ``ValueError`` naming ``name`` and listing the valid ``choices`` if ``value`` is not one of them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_positive(name: str, value, *, integer: bool = False, strict: bool = True) -> None:
    """Raise ``ValueError`` unless ``value`` is a (strictly) positive number (an integer if ``integer``)."""
    ok_type = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok_type or (value <= 0 if strict else value < 0) or value != value:
        kind = "integer" if integer else "number"
        raise ValueError(f"{name} must be a {'positive' if strict else 'non-negative'} {kind}, got {value!r}")


def check_image_shape(name: str, shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate a per-sample image shape ``(C, H, W)`` of positive integers and return it as a tuple."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as exc:
        raise ShapeError(f"{name} must be a shape (C, H, W), got {shape!r}") from exc
    if len(shape) != 3 or min(shape) < 1:
        raise ShapeError(f"{name} must be a shape (C, H, W) of positive sizes, got {shape}")
    return shape  # type: ignore[return-value]


def check_mask(name: str, mask, image_shape: Sequence[int]) -> torch.Tensor:
    """A boolean mask of shape ``(H, W)`` or ``(C, H, W)`` matching ``image_shape = (C, H, W)``, as ``(C, H, W)``."""
    check_tensor(name, mask)
    if mask.dtype != torch.bool:
        raise DTypeError(f"{name} must be a boolean tensor (True = observed), got dtype {mask.dtype}")
    c, h, w = image_shape
    if tuple(mask.shape) not in ((h, w), (c, h, w)):
        raise ShapeError(f"{name} must have shape ({h}, {w}) or ({c}, {h}, {w}) to match the image shape "
                         f"{tuple(image_shape)}, got {tuple(mask.shape)}")
    return mask.expand(c, h, w) if mask.ndim == 2 else mask
