"""Sampler options of a study or of ``bayesinv sample``: checked against the sampler's signature before any work.

An option the sampler does not take is refused with the list of those it does; a value whose type differs
from the one the signature declares (``eta = true`` or ``eta = "0.5"`` for a ``float``, ``max_iter = "10"``
for an ``int``) is refused naming the option. Integers are accepted for ``float`` options; booleans are never
numbers. Options whose annotation is not built from ``float``/``int``/``bool``/``str``/``None`` (tuples,
tensors, callables, models) are passed through unchecked. :func:`check_memory` refuses, before any
allocation, a sample count whose samples alone would not fit in this machine's memory.

>>> check_sampler_options("exact", {"shrink": 0.5}).__name__
'sample_exact'
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

from bayesinv.studies.spec import StudySpecError

__all__ = ["check_sampler_options", "sampler_registry", "check_memory", "physical_memory", "WORKING_COPIES"]

WORKING_COPIES = 3  # iterate, denoised estimate and returned samples, each num_samples x C x H x W in float64


def sampler_registry() -> dict[str, Callable]:
    """Every sampler a study can name: the samplers, the baselines (if installed) and ``"exact"``."""
    from bayesinv.samplers import SAMPLERS
    from bayesinv.studies.exact import sample_exact

    try:
        from bayesinv.samplers.baselines import BASELINES
    except ImportError:  # baselines not installed in this build
        BASELINES = {}
    return {"exact": sample_exact, **BASELINES, **SAMPLERS}


def check_sampler_options(name: str, options: dict) -> Callable:
    """The sampler ``name`` from the registry, after checking that it takes ``options`` with values of the
    types its signature declares (before any work); raises :class:`StudySpecError` naming the option."""
    registry = sampler_registry()
    if name not in registry:
        raise StudySpecError(f"unknown sampler {name!r}; choose one of {sorted(registry)}")
    _check_options(name, registry[name], options)
    return registry[name]


_KINDS = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}


def _declared_kinds(param: inspect.Parameter) -> tuple[set[str], bool] | None:
    """``({"float", "int", ...}, None allowed)`` from a parameter's annotation when it is built only from
    float/int/bool/str/None; None (no check) for anything else (tuples, tensors, callables, models)."""
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    tokens = set(re.findall(r"[A-Za-z_][\w.]*", text))
    if not tokens or tokens - {"float", "int", "bool", "str", "None", "Optional"}:
        return None
    return tokens & set(_KINDS), "None" in tokens or "Optional" in tokens


def _type_error(value, kinds: set[str], allow_none: bool) -> str | None:
    if value is None:
        return None if allow_none else "None"
    for kind in kinds:
        if isinstance(value, _KINDS[kind]) and (kind == "bool" or not isinstance(value, bool)):
            return None
    return f"{type(value).__name__} {value!r}"


def _check_options(name: str, function: Callable, options: dict) -> None:
    """Refuse options the sampler does not take (listing the ones it does) and values whose type differs from
    the one its signature declares (``eta = true`` for a float, ``max_iter = "10"`` for an int)."""
    params = inspect.signature(function).parameters
    fixed = {"problem", "y", "num_samples", "generator", "progress", "steps"}
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            allowed = ", ".join(k for k, p in params.items()
                                if k not in fixed and p.kind is inspect.Parameter.KEYWORD_ONLY)
            raise StudySpecError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: {allowed}")
    for key, value in options.items():
        if key in fixed:
            raise StudySpecError(f"{name}: option {key!r} is set by the study itself (num_samples, steps, ...), "
                                 "not in options")
        declared = _declared_kinds(params[key]) if key in params else None
        if declared is None:
            continue
        got = _type_error(value, *declared)
        if got is not None:
            want = " or ".join(sorted(declared[0]) + (["None"] if declared[1] else []))
            raise StudySpecError(f"{name}: option {key!r} must be {want}, got {got}")


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None if unknown)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(num_samples: int, image_size: int, what: str, channels: int = 1) -> None:
    """Raise ``ValueError`` (naming ``what``, e.g. ``"--num-samples"``) with an estimate when ``num_samples``
    images of ``channels x image_size x image_size`` float64 pixels, times :data:`WORKING_COPIES`, exceed the
    machine's physical memory: a clear refusal instead of the allocator's message after minutes of work."""
    need = num_samples * channels * image_size * image_size * 8 * WORKING_COPIES
    total = physical_memory()
    if total is not None and need > total:
        raise ValueError(f"{what} {num_samples} needs at least {need / 2**30:.1f} GiB ({num_samples} x "
                         f"{channels}x{image_size}x{image_size} pixels x 8 bytes x {WORKING_COPIES} working copies), "
                         f"more than this machine's {total / 2**30:.1f} GiB; use fewer samples")
