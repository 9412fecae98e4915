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

Every missing or malformed entry raises :class:`StudySpecError` naming the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesinv.errors import BayesinvError

__all__ = ["StudySpec", "SamplerSpec", "StudySpecError", "load_study", "parse_study", "FAMILIES", "OOD_FAMILIES"]

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
    """

    label: str
    sampler: str
    num_samples: int = 32
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    max_cases: int | None = None


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


def _get(table: dict, key: str, kind, where: str, default=...):
    if key not in table:
        if default is ...:
            raise StudySpecError(f"study spec: missing required key '{where}{key}'")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StudySpecError(f"study spec: '{where}{key}' must be {getattr(kind, '__name__', kind)}, "
                             f"got {type(value).__name__} {value!r}")
    return value


def parse_study(data: dict, path: Path | None = None) -> StudySpec:
    """Validate a parsed TOML document and build a :class:`StudySpec`."""
    problem = _get(data, "problem", dict, "")
    prior = _get(data, "prior", dict, "")
    dataset = _get(data, "data", dict, "")
    samplers = _get(data, "samplers", dict, "")
    diag = _get(data, "diagnostics", dict, "", default={})
    if not samplers:
        raise StudySpecError("study spec: [samplers] must name at least one sampler table")
    sampler_specs = []
    for label, table in samplers.items():
        if not isinstance(table, dict):
            raise StudySpecError(f"study spec: 'samplers.{label}' must be a table")
        where = f"samplers.{label}."
        num = _get(table, "num_samples", int, where, default=32)
        if num < 1:
            raise StudySpecError(f"study spec: '{where}num_samples' must be >= 1, got {num}")
        max_cases = _get(table, "max_cases", int, where, default=None)
        if max_cases is not None and max_cases < 2:
            raise StudySpecError(f"study spec: '{where}max_cases' must be >= 2, got {max_cases}")
        sampler_specs.append(SamplerSpec(label, _get(table, "sampler", str, where), num,
                                         _get(table, "steps", int, where, default=None),
                                         dict(_get(table, "options", dict, where, default={})), max_cases))
    levels = tuple(float(v) for v in _get(diag, "levels", list, "diagnostics.", default=list(DEFAULT_LEVELS)))
    if not levels or any(not 0 < v < 1 for v in levels):
        raise StudySpecError(f"study spec: 'diagnostics.levels' must be numbers in (0, 1), got {levels}")
    sigma = _get(problem, "noise_sigma", float, "problem.")
    if not sigma > 0:
        raise StudySpecError(f"study spec: 'problem.noise_sigma' must be positive, got {sigma}")
    spec = StudySpec(
        name=_get(data, "name", str, "", default=path.parent.name if path else "study"),
        seed=_get(data, "seed", int, "", default=0),
        operator=_get(problem, "operator", str, "problem."),
        image_size=_get(problem, "image_size", int, "problem.", default=32),
        noise_sigma=sigma,
        operator_options=dict(_get(problem, "operator_options", dict, "problem.", default={})),
        prior=_get(prior, "name", str, "prior."),
        samplers=tuple(sampler_specs),
        num_calibration=_get(dataset, "num_calibration", int, "data."),
        num_test=_get(dataset, "num_test", int, "data."),
        family=_get(dataset, "family", str, "data.", default="ellipses"),
        lesion_prob=_get(dataset, "lesion_prob", float, "data.", default=0.5),
        num_ood=_get(dataset, "num_ood", int, "data.", default=0),
        ood_family=_get(dataset, "ood_family", str, "data.", default="shepp_logan"),
        levels=levels,
        alpha=_get(diag, "alpha", float, "diagnostics.", default=0.1),
        delta=_get(diag, "delta", float, "diagnostics.", default=0.1),
        audit=_get(diag, "audit", bool, "diagnostics.", default=True),
        lesion_threshold=_get(diag, "lesion_threshold", float, "diagnostics.", default=0.13),
        path=path,
    )
    if spec.num_calibration < 2 or spec.num_test < 2:
        raise StudySpecError("study spec: 'data.num_calibration' and 'data.num_test' must be >= 2, got "
                             f"{spec.num_calibration} and {spec.num_test}")
    if spec.num_ood < 0:
        raise StudySpecError(f"study spec: 'data.num_ood' must be >= 0, got {spec.num_ood}")
    if spec.family not in FAMILIES:
        raise StudySpecError(f"study spec: 'data.family' must be one of {FAMILIES}, got {spec.family!r}")
    if spec.ood_family not in OOD_FAMILIES:
        raise StudySpecError(f"study spec: 'data.ood_family' must be one of {OOD_FAMILIES}, got {spec.ood_family!r}")
    if not 0 < spec.alpha < 1 or not 0 < spec.delta < 1:
        raise StudySpecError(f"study spec: 'diagnostics.alpha' and 'diagnostics.delta' must be in (0, 1), got "
                             f"{spec.alpha} and {spec.delta}")
    if not 0 <= spec.lesion_prob <= 1:
        raise StudySpecError(f"study spec: 'data.lesion_prob' must be in [0, 1], got {spec.lesion_prob}")
    labels = [s.label for s in spec.samplers]
    if any(not label.replace("_", "").replace("-", "").isalnum() for label in labels):
        raise StudySpecError(f"study spec: sampler labels must be letters, digits, '-' or '_', got {labels}")
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
