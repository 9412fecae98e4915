"""Study specs: a TOML file that names the problem, prior, samplers, data splits and levels.

Example (``calibration/phantom32-deblur/study.toml``)::

    name = "phantom32-deblur"
    seed = 0

    [problem]
    operator = "deblur"            # a name for bayesinv.operators.make_operator
    image_size = 32
    noise_sigma = 0.05
    [problem.operator_options]     # optional keyword arguments of the operator
    kernel_std = 1.5

    [prior]
    name = "phantom32"             # models/<name>, loaded with a checksum check

    [data]
    family = "ellipses"            # "ellipses", "shepp_logan" or "prior" (truths drawn from the prior itself)
    lesion_prob = 0.5
    num_calibration = 20
    num_test = 20
    num_ood = 8                    # optional out-of-distribution split (audit only)
    ood_family = "shepp_logan"     # "shepp_logan" or "images" (bayesinv.data.images)

    [samplers.dps]                 # one table per sampler; the key is the label in the report
    sampler = "dps"
    num_samples = 32
    steps = 100
    batch_cases = 8                # 8 cases per sampler call, one network call per step for all (optional)
    [samplers.dps.options]
    guidance_scale = 0.3
    [samplers.smc]
    sampler = "smc"
    max_cases = 6                  # only the first 6 cases of each split (slow sampler)

    [diagnostics]
    levels = [0.1, 0.5, 0.9]
    alpha = 0.1                    # conformal: miscoverage risk level (main level = 1 - alpha)
    delta = 0.1                    # conformal: 1 - confidence
    audit = true                   # hallucination audit (null space, chi^2, z-maps, lesions, OOD)
    lesion_threshold = 0.13        # |disc - ring| contrast above which a sample "shows a lesion"

The spec is validated strictly against :data:`SCHEMA`: an unknown key (``num_sample``, ``[diagnostic]``)
is an error with a "did you mean", as are a wrong type (``max_iter = "10"``, ``eta = true``), a value out
of range or not finite (``lesion_threshold = -1`` or ``nan``) and a reserved sampler label (``cases``).
Every error is a :class:`StudySpecError` naming the file and the key.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesinv.errors import BayesinvError

__all__ = ["StudySpec", "SamplerSpec", "StudySpecError", "load_study", "parse_study", "FAMILIES", "OOD_FAMILIES",
           "SCHEMA", "RESERVED_LABELS", "check_sampler_options"]

FAMILIES = ("ellipses", "shepp_logan", "prior")
OOD_FAMILIES = ("shepp_logan", "images")
DEFAULT_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 20))


class StudySpecError(BayesinvError, ValueError):
    """A study TOML is malformed or incomplete (the message names the key)."""


@dataclass(frozen=True)
class SamplerSpec:
    """One ``[samplers.<label>]`` table: registry name, samples per case, steps, extra options.

    ``max_cases`` runs the sampler on the first ``max_cases`` cases of each split only (slow samplers
    such as SMC on a subset); its diagnostics then use those cases.

    ``batch_cases`` (default 1) runs that many consecutive cases of a split in one sampler call (cases
    ``0..k-1``, ``k..2k-1``, ...; the last group may be smaller), the chains of all of them in one network
    call per step; only the samplers of :data:`~bayesinv.samplers.CASE_SAMPLERS` allow more than 1. A
    group's draws come from one generator, so they depend on the grouping, which is part of each result's
    provenance (:mod:`bayesinv.studies.runner`).
    """

    label: str
    sampler: str
    num_samples: int = 32
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    max_cases: int | None = None
    batch_cases: int = 1


@dataclass(frozen=True)
class StudySpec:
    """A validated study (see the module docstring for the TOML keys)."""

    name: str
    seed: int
    operator: str
    image_size: int
    noise_sigma: float
    prior: str
    samplers: tuple[SamplerSpec, ...]
    num_calibration: int
    num_test: int
    operator_options: dict[str, Any] = field(default_factory=dict)
    family: str = "ellipses"
    lesion_prob: float = 0.5
    num_ood: int = 0
    ood_family: str = "shepp_logan"
    levels: tuple[float, ...] = DEFAULT_LEVELS
    alpha: float = 0.1
    delta: float = 0.1
    audit: bool = True
    lesion_threshold: float = 0.13
    path: Path | None = None

    @property
    def folder(self) -> Path:
        return self.path.parent if self.path is not None else Path(".")


# The schema: every key a table may hold (``None``: any keys, e.g. an operator's or a sampler's options).
SCHEMA: dict[str, tuple[str, ...] | None] = {
    "": ("name", "seed", "problem", "prior", "data", "samplers", "diagnostics"),
    "problem.": ("operator", "image_size", "noise_sigma", "operator_options"),
    "prior.": ("name",),
    "data.": ("family", "lesion_prob", "num_calibration", "num_test", "num_ood", "ood_family"),
    "sampler": ("sampler", "num_samples", "steps", "options", "max_cases", "batch_cases"),
    "diagnostics.": ("levels", "alpha", "delta", "audit", "lesion_threshold"),
}
RESERVED_LABELS = ("cases",)  # results/<label>/ must not collide with results/cases/ (the ground truth)


class _Reader:
    """Typed reads from the parsed TOML; every error names the file (when known) and the dotted key."""

    def __init__(self, path: Path | None):
        self.prefix = f"study spec {path}" if path is not None else "study spec"

    def error(self, message: str) -> StudySpecError:
        return StudySpecError(f"{self.prefix}: {message}")

    def known(self, table: dict, where: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"; did you mean '{where}{close[0]}'?" if close else f"; allowed keys: {', '.join(allowed)}"
                raise self.error(f"unknown key '{where}{key}'{hint}")

    def get(self, table: dict, key: str, kind, where: str, default=...):
        if key not in table:
            if default is ...:
                raise self.error(f"missing required key '{where}{key}'")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            raise self.error(f"'{where}{key}' must be {getattr(kind, '__name__', kind)}, "
                             f"got {type(value).__name__} {value!r}")
        if kind is float and not math.isfinite(value):
            raise self.error(f"'{where}{key}' must be a finite number, got {value!r}")
        return value

    def number(self, table: dict, key: str, where: str, default, low: float, high: float, *,
               closed: bool = False, kind=float):
        """A number in ``(low, high)`` (``[low, high]`` when ``closed``)."""
        value = self.get(table, key, kind, where, default)
        if value is None:
            return value
        inside = low <= value <= high if closed else low < value < high
        if not inside:
            bounds = f"[{low}, {high}]" if closed else f"({low}, {high})"
            raise self.error(f"'{where}{key}' must be in {bounds}, got {value!r}")
        return value


def _sampler(read: _Reader, label: str, table, check_options: bool) -> SamplerSpec:
    where = f"samplers.{label}."
    if not isinstance(table, dict):
        raise read.error(f"'samplers.{label}' must be a table")
    if label in RESERVED_LABELS:
        raise read.error(f"sampler label 'samplers.{label}' is reserved (results/{label}/ holds the study's "
                         "cases); choose another label")
    if not label.replace("_", "").replace("-", "").isalnum():
        raise read.error(f"sampler labels must be letters, digits, '-' or '_', got 'samplers.{label}'")
    read.known(table, where, SCHEMA["sampler"])
    num = read.get(table, "num_samples", int, where, default=32)
    if num < 1:
        raise read.error(f"'{where}num_samples' must be >= 1, got {num}")
    steps = read.get(table, "steps", int, where, default=None)
    if steps is not None and steps < 1:
        raise read.error(f"'{where}steps' must be >= 1, got {steps}")
    max_cases = read.get(table, "max_cases", int, where, default=None)
    if max_cases is not None and max_cases < 2:
        raise read.error(f"'{where}max_cases' must be >= 2, got {max_cases}")
    batch_cases = read.get(table, "batch_cases", int, where, default=1)
    if batch_cases < 1:
        raise read.error(f"'{where}batch_cases' must be >= 1, got {batch_cases}")
    name = read.get(table, "sampler", str, where)
    options = dict(read.get(table, "options", dict, where, default={}))
    if check_options:
        try:
            check_sampler_options(name, options)
        except StudySpecError as exc:
            raise read.error(f"'{where}options': {exc}") from None
        if batch_cases > 1:
            from bayesinv.builders import case_batching

            try:
                case_batching(name)
            except ValueError as exc:
                raise read.error(f"'{where}batch_cases' = {batch_cases}: {exc}") from None
    return SamplerSpec(label, name, num, steps, options, max_cases, batch_cases)


def parse_study(data: dict, path: Path | None = None, *, check_options: bool = True) -> StudySpec:
    """Validate a parsed TOML document and build a :class:`StudySpec`.

    Unknown keys (with a "did you mean"), wrong types, out-of-range and non-finite values and reserved
    sampler labels raise :class:`StudySpecError` naming the file and the key. ``check_options`` also checks
    each sampler's name and options against the sampler's signature (names and types).
    """
    read = _Reader(path)
    read.known(data, "", SCHEMA[""])
    problem = read.get(data, "problem", dict, "")
    prior = read.get(data, "prior", dict, "")
    dataset = read.get(data, "data", dict, "")
    samplers = read.get(data, "samplers", dict, "")
    diag = read.get(data, "diagnostics", dict, "", default={})
    for where, table in (("problem.", problem), ("prior.", prior), ("data.", dataset), ("diagnostics.", diag)):
        read.known(table, where, SCHEMA[where])
    if not samplers:
        raise read.error("[samplers] must name at least one sampler table")
    sampler_specs = tuple(_sampler(read, label, table, check_options) for label, table in samplers.items())
    levels = read.get(diag, "levels", list, "diagnostics.", default=list(DEFAULT_LEVELS))
    if not levels or any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1 for v in levels):
        raise read.error(f"'diagnostics.levels' must be numbers in (0, 1), got {tuple(levels)}")
    sigma = read.get(problem, "noise_sigma", float, "problem.")
    if not sigma > 0:
        raise read.error(f"'problem.noise_sigma' must be positive, got {sigma}")
    image_size = read.get(problem, "image_size", int, "problem.", default=32)
    if image_size < 2:
        raise read.error(f"'problem.image_size' must be >= 2, got {image_size}")
    seed = read.get(data, "seed", int, "", default=0)
    if seed < 0:
        raise read.error(f"'seed' must be >= 0, got {seed}")
    spec = StudySpec(
        name=read.get(data, "name", str, "", default=path.parent.name if path else "study"),
        seed=seed,
        operator=read.get(problem, "operator", str, "problem."),
        image_size=image_size,
        noise_sigma=sigma,
        operator_options=dict(read.get(problem, "operator_options", dict, "problem.", default={})),
        prior=read.get(prior, "name", str, "prior."),
        samplers=sampler_specs,
        num_calibration=read.get(dataset, "num_calibration", int, "data."),
        num_test=read.get(dataset, "num_test", int, "data."),
        family=read.get(dataset, "family", str, "data.", default="ellipses"),
        lesion_prob=read.number(dataset, "lesion_prob", "data.", 0.5, 0.0, 1.0, closed=True),
        num_ood=read.get(dataset, "num_ood", int, "data.", default=0),
        ood_family=read.get(dataset, "ood_family", str, "data.", default="shepp_logan"),
        levels=tuple(float(v) for v in levels),
        alpha=read.number(diag, "alpha", "diagnostics.", 0.1, 0.0, 1.0),
        delta=read.number(diag, "delta", "diagnostics.", 0.1, 0.0, 1.0),
        audit=read.get(diag, "audit", bool, "diagnostics.", default=True),
        lesion_threshold=read.number(diag, "lesion_threshold", "diagnostics.", 0.13, 0.0, 1.0),
        path=path,
    )
    if spec.num_calibration < 2 or spec.num_test < 2:
        raise read.error("'data.num_calibration' and 'data.num_test' must be >= 2, got "
                         f"{spec.num_calibration} and {spec.num_test}")
    if spec.num_ood < 0:
        raise read.error(f"'data.num_ood' must be >= 0, got {spec.num_ood}")
    if spec.family not in FAMILIES:
        raise read.error(f"'data.family' must be one of {FAMILIES}, got {spec.family!r}")
    if spec.ood_family not in OOD_FAMILIES:
        raise read.error(f"'data.ood_family' must be one of {OOD_FAMILIES}, got {spec.ood_family!r}")
    return spec


def load_study(path: str | os.PathLike) -> StudySpec:
    """Read and validate ``study.toml`` (a folder containing one is accepted too)."""
    path = Path(path)
    if path.is_dir():
        path = path / "study.toml"
    if not path.exists():
        raise FileNotFoundError(f"study spec not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudySpecError(f"study spec {path} is not valid TOML: {exc}") from exc
    return parse_study(data, path.resolve())


def check_sampler_options(name: str, options: dict) -> Callable:
    """The sampler ``name`` from the registry, after checking that it takes ``options`` with values of the types
    its signature declares (:func:`bayesinv.builders.sampler_function`, shared with ``bayesinv sample``); a
    :class:`StudySpecError` naming the option otherwise."""
    from bayesinv.builders import sampler_function

    try:
        return sampler_function(name, options)
    except ValueError as exc:
        raise StudySpecError(str(exc)) from None
