"""Input checks shared by operators, noise models, priors and samplers (one place for each check).

Sampler steps are checked here too, once per step boundary (never per operator call): :func:`check_step`
raises :class:`~bayesinv.errors.SamplerDivergence` when the iterate holds NaN/inf or has left a given
radius around a centre (the prior's range), and :func:`guard` turns a :class:`~bayesinv.errors.NonFiniteError`
raised inside a step into the same error, naming the sampler and the step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from bayesinv.errors import DTypeError, NonFiniteError, SamplerDivergence, ShapeError

__all__ = ["check_tensor", "check_batch_shape", "check_finite", "as_real_dtype", "check_choice", "check_positive",
           "check_mask", "check_image_shape", "check_number", "check_step", "guard", "check_device"]


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


def check_device(value, name: str = "device") -> torch.device:
    """``value`` as a ``torch.device`` that holds data on this machine, else ``ValueError`` naming ``name``.

    Refused, before any work: a name torch does not know (``"gpu"``), ``"cuda"`` (or ``"mps"``, ``"xpu"``) where
    this build or machine has none, a CUDA index past the last device, and ``"meta"`` (shapes without data).

    >>> check_device("cpu")
    device(type='cpu')
    """
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} {value!r} is not a torch device; use e.g. cpu, cuda, cuda:1 or mps") from None
    if device.type == "meta":
        raise ValueError(f"{name} meta holds no data (shapes only); use e.g. cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"{name} {value}: CUDA is not available ({why}, torch {torch.__version__}); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {value}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {value}: MPS (Apple GPU) is not available on this machine; use cpu")
    elif device.type != "cpu":
        try:  # mps, xpu, ...: a one-element allocation says whether the backend is there
            torch.empty(1, device=device)
        except Exception as exc:  # AssertionError, RuntimeError or NotImplementedError depending on the backend
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
            raise ValueError(f"{name} {value}: not available on this machine ({first})") from None
    return device


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


def check_number(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False, owner: str = "") -> float:
    """``value`` as a float if it is a real number in the interval given by ``low``/``high`` (closed unless
    ``*_open``); else ``ValueError`` naming ``owner: name``, the interval and the value (bools, NaN and strings
    are refused)."""
    label = f"{owner}: {name}" if owner else name
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{label} must be a number in {interval}, got {value!r}")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high or (low is not None and high is not None and math.isinf(value)):
        raise ValueError(f"{label} must be in {interval}, got {value!r}")
    return value


def check_step(name: str, step: int, x: torch.Tensor, last_good: torch.Tensor | None = None, detail: str = "", *,
               centre: float = 0.0, radius: float | None = None) -> torch.Tensor:
    """Raise :class:`SamplerDivergence` if ``x`` holds NaN/inf or, when ``radius`` is given, if
    ``max |x - centre| > radius``; return ``x`` otherwise. One host synchronisation (a single scalar)."""
    if not x.numel():
        worst = 0.0
    elif x.is_complex():
        worst = float((x - centre).abs().amax())
    else:  # one pass, no temporaries: max |x - c| = max(hi - c, c - lo); NaN propagates through aminmax
        low, high = torch.aminmax(x.detach())
        worst = float(torch.maximum(high - centre, centre - low))
    if math.isfinite(worst) and (radius is None or worst <= radius):
        return x
    keep = None if last_good is None else last_good.detach().clone()  # only when raising
    if not math.isfinite(worst):
        bad = int((~torch.isfinite(x)).sum())
        msg = f"{bad} of {x.numel()} values are NaN/inf"
        raise SamplerDivergence(name, step, f"{msg}; {detail}" if detail else msg, last_good=keep)
    if radius is not None and worst > radius:
        msg = f"max |x - {centre:.3g}| = {worst:.3g} > {radius:.3g}, far outside the prior's range"
        raise SamplerDivergence(name, step, f"{msg}; {detail}" if detail else msg, last_good=keep,
                                reason="the iterate left the prior's range")
    return x


@contextmanager
def guard(name: str, step: int, last_good: torch.Tensor | None = None) -> Iterator[None]:
    """Turn a :class:`NonFiniteError` raised inside a step (e.g. an operator given a NaN ``x0_hat``)
    into :class:`SamplerDivergence` naming the sampler and the step; a :class:`SamplerDivergence` the step
    raises itself gets ``last_good`` (the iterate before the step) when it carries none."""
    try:
        yield
    except SamplerDivergence as err:  # raised by the step itself: give it the last good iterate if it has none
        if err.last_good is None and last_good is not None:
            err.last_good = last_good.detach().clone()
        raise
    except NonFiniteError as err:
        raise SamplerDivergence(name, step, str(err),
                                last_good=None if last_good is None else last_good.detach().clone()) from err
