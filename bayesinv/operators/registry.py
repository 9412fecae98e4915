"""Operators by name: ``make_operator(name, shape, seed=0, **options)`` for studies, the CLI and the demo.

Each entry of :data:`OPERATORS` is a factory ``(shape, generator, **options) -> Operator`` whose
keyword arguments are the options with their defaults. Random parts (masks, matrices, phases) are
drawn from a ``torch.Generator`` seeded with ``seed``, so a name, a shape and a seed give one operator.

>>> op = make_operator("inpaint", (1, 8, 8), fraction_missing=0.25)
>>> type(op).__name__, op.num_observed
('Inpaint', 48)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch

from bayesinv._validation import check_choice, check_image_shape, check_positive
from bayesinv.operators.base import Operator
from bayesinv.operators.blur import Blur, motion_kernel, uniform_kernel
from bayesinv.operators.cs import SubsampledFourier, bernoulli_sensing, gaussian_sensing
from bayesinv.operators.denoise import Identity
from bayesinv.operators.inpaint import Inpaint, box_mask, random_mask
from bayesinv.operators.mri import MRI, MultiCoilMRI, cartesian_mask, simulate_coil_maps
from bayesinv.operators.phase import CodedDiffraction, PhaseRetrieval
from bayesinv.operators.superres import SuperResolution

__all__ = ["OPERATORS", "make_operator", "operator_options"]


def _denoise(shape, generator):
    return Identity(shape)


def _inpaint(shape, generator, fraction_missing: float = 0.5, kind: str = "random", output: str = "image"):
    """``random``: that fraction of pixels missing (shared by channels); ``box``: a centred box of that area."""
    check_choice("kind", kind, ("random", "box"))
    _, h, w = shape
    if kind == "random":
        return Inpaint(shape, random_mask((h, w), fraction_missing, generator), output=output)
    if not isinstance(fraction_missing, (int, float)) or not 0 <= fraction_missing <= 1:
        raise ValueError(f"fraction_missing must be a number in [0, 1], got {fraction_missing!r}")
    bh, bw = round(h * math.sqrt(fraction_missing)), round(w * math.sqrt(fraction_missing))
    return Inpaint(shape, box_mask((h, w), ((h - bh) // 2, (w - bw) // 2, bh, bw)), output=output)


def _superres(shape, generator, factor: int = 2):
    return SuperResolution(shape, factor)


def _deblur(shape, generator, kernel: str = "gaussian", std: float = 1.5, size: int | None = None,
            angle: float = 0.0, length: float | None = None):
    """``gaussian`` (std, size), ``uniform`` (size, default 5), ``motion`` (size default 9, angle, length = size - 1)."""
    check_choice("kernel", kernel, ("gaussian", "uniform", "motion"))
    if kernel == "gaussian":
        return Blur.gaussian(shape, std, size)
    if kernel == "uniform":
        return Blur(shape, uniform_kernel(5 if size is None else size))
    size = 9 if size is None else size
    return Blur(shape, motion_kernel(size, angle, size - 1 if length is None else length))


def _count(shape, ratio: float) -> int:
    if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"ratio must be a number in (0, 1] (measurements per unknown), got {ratio!r}")
    return max(1, round(ratio * math.prod(shape)))


def _cs_gaussian(shape, generator, ratio: float = 0.25):
    return gaussian_sensing(shape, _count(shape, ratio), generator)


def _cs_bernoulli(shape, generator, ratio: float = 0.25):
    return bernoulli_sensing(shape, _count(shape, ratio), generator)


def _cs_fourier(shape, generator, ratio: float = 0.25):
    return SubsampledFourier.random(shape, _count(shape[1:], ratio), generator)


def _mri(shape, generator, acceleration: float = 4, center_fraction: float = 0.08, kind: str = "random",
         input_complex: bool = False):
    mask = cartesian_mask(shape[1:], acceleration, center_fraction, kind=kind, generator=generator)
    return MRI(shape, mask, input_complex=input_complex)


def _mri_multicoil(shape, generator, num_coils: int = 4, acceleration: float = 4, center_fraction: float = 0.08,
                   kind: str = "random", input_complex: bool = False):
    mask = cartesian_mask(shape[1:], acceleration, center_fraction, kind=kind, generator=generator)
    return MultiCoilMRI(shape, mask, simulate_coil_maps(num_coils, shape[1:]), input_complex=input_complex)


def _phase_retrieval(shape, generator, oversampling: float = 4):
    check_positive("oversampling", oversampling)
    return PhaseRetrieval(shape, max(1, round(oversampling * math.prod(shape))), generator)


def _phase_cdp(shape, generator, num_patterns: int = 4):
    return CodedDiffraction(shape, num_patterns, generator)


OPERATORS: dict[str, Callable[..., Operator]] = {
    "denoise": _denoise,
    "inpaint": _inpaint,
    "superres": _superres,
    "deblur": _deblur,
    "cs_gaussian": _cs_gaussian,
    "cs_bernoulli": _cs_bernoulli,
    "cs_fourier": _cs_fourier,
    "mri": _mri,
    "mri_multicoil": _mri_multicoil,
    "phase_retrieval": _phase_retrieval,
    "phase_cdp": _phase_cdp,
}


def operator_options(name: str) -> dict[str, object]:
    """The options of operator ``name`` with their defaults."""
    check_choice("operator name", name, sorted(OPERATORS))
    params = list(inspect.signature(OPERATORS[name]).parameters.values())[2:]
    return {p.name: p.default for p in params}


def make_operator(name: str, shape: Sequence[int], *, seed: int = 0, **options) -> Operator:
    """The operator ``name`` on images ``shape = (C, H, W)``, its random parts drawn with ``seed``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) or a bad option value, and
    ``TypeError`` for an unknown option (listing the valid ones). See :data:`OPERATORS` for the names
    and :func:`operator_options` for each one's options and defaults.
    """
    valid = operator_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"operator {name!r} got unknown option(s) {unknown}; valid options: {valid}")
    shape = check_image_shape("shape", shape)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    generator = torch.Generator().manual_seed(seed)
    return OPERATORS[name](shape, generator, **options)
