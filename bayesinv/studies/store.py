"""Result storage of a study: provenance hashes, atomic writes and verification of what is on disk.

Every file a study writes records the SHA-256 of everything that produced it (its *provenance*):

* a case file (truth, measurement) records the problem part of the spec (operator, its options, image
  size, noise level, study seed), the data part (family, lesion probability, split size), the prior's
  identity (name and the SHA-256 of its ``SHA256SUMS``, which lists the weights' and config's checksums)
  and the package version;
* a result file records its case's hash plus the sampler part (registry name, ``num_samples``, ``steps``,
  options, and the ``SHA256SUMS`` digest of any model an option names).

A file counts as done only when it *verifies*: it opens (a truncated safetensors file does not), its
tensors have the expected shape and chain count, and its recorded hash equals the hash the current spec
gives. Anything else is stale or broken: the runner names it and computes it again (or, when asked not
to recompute, refuses with :class:`StaleResultsError`). Writes go to ``<name>.tmp`` and are renamed into
place; a failed write (full disk, read-only folder) removes its temporary file and raises an
``OSError`` naming the file.

>>> fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": (1, 2), "b": 1})
True
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bayesinv.errors import BayesinvError

__all__ = ["fingerprint", "prior_identity", "model_digest", "case_provenance", "result_provenance",
           "atomic_save_tensors", "atomic_write_text", "save_result", "verify_case", "verify_result",
           "clean_tmp", "StaleResultsError", "PROVENANCE_KEY"]

PROVENANCE_KEY = "provenance"


class StaleResultsError(BayesinvError, RuntimeError):
    """Result files on disk do not match the spec (stale or broken) and recomputing was not allowed."""


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def fingerprint(parts: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``parts`` (sorted keys; tuples and lists alike)."""
    text = json.dumps(_canonical(parts), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def model_digest(name: str) -> str | None:
    """SHA-256 of the ``SHA256SUMS`` of model ``name`` (a name under the models root or a folder path; the
    file lists the weights' and config's checksums), or None when ``name`` is not a model folder."""
    from bayesinv.errors import WeightsError
    from bayesinv.priors.hub import CHECKSUMS_NAME, resolve_model

    if not isinstance(name, str) or not name:
        return None
    try:
        sums = resolve_model(name) / CHECKSUMS_NAME
    except WeightsError:
        return None
    return hashlib.sha256(sums.read_bytes()).hexdigest() if sums.is_file() else None


def prior_identity(name: str, image_size: int) -> dict[str, Any]:
    """The prior's identity: its name, image size and (for a model folder) its checksum digest."""
    return {"name": name, "image_size": image_size, "checksums": model_digest(name)}


def _problem_part(spec) -> dict[str, Any]:
    return {"operator": spec.operator, "operator_options": spec.operator_options, "image_size": spec.image_size,
            "noise_sigma": spec.noise_sigma, "seed": spec.seed}


def case_provenance(spec, split: str, split_size: int, custom_problem: Any = None) -> dict[str, Any]:
    """What one split's case files depend on (with its ``hash``). ``custom_problem`` describes a problem
    given instead of the spec's (``run_study(problem=...)``)."""
    import bayesinv

    family = spec.ood_family if split == "ood" else spec.family
    parts = {"kind": "case", "version": bayesinv.__version__, "problem": _problem_part(spec),
             "prior": prior_identity(spec.prior, spec.image_size), "custom_problem": custom_problem,
             "data": {"split": split, "size": split_size, "family": family, "lesion_prob": spec.lesion_prob}}
    return {**parts, "hash": fingerprint(parts)}


def _sampler_models(sampler) -> dict[str, str | None]:
    names = [v for v in sampler.options.values() if isinstance(v, str)]
    if sampler.sampler == "dirac" and "model" not in sampler.options:
        from bayesinv.samplers.dirac import SHIPPED_MODELS

        names += list(SHIPPED_MODELS)
    return {name: digest for name in names if (digest := model_digest(name)) is not None}


def result_provenance(spec, label: str, split: str, index: int, case_hash: str) -> dict[str, Any]:
    """What one (sampler, case) result depends on (with its ``hash``).

    The device the samplers ran on (``run_study(device=...)``, ``--device``) is deliberately not a part, nor
    the number of threads: both change only floating-point rounding (the random draws come from the task's
    CPU generator on every device, and cases are always drawn on the CPU), so a result computed on the CPU
    is a valid result of the spec on a GPU and the reverse; hashing the device would make a finished CPU study
    stale the moment it is resumed on a GPU and recompute all of it.
    """
    import bayesinv

    sampler = next(s for s in spec.samplers if s.label == label)
    parts = {"kind": "result", "version": bayesinv.__version__, "case": case_hash, "split": split, "index": index,
             "seed": spec.seed, "label": label,
             "sampler": {"name": sampler.sampler, "num_samples": sampler.num_samples, "steps": sampler.steps,
                         "options": sampler.options, "models": _sampler_models(sampler)}}
    return {**parts, "hash": fingerprint(parts)}


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(<path>.tmp)`` then rename onto ``path``; on any failure remove the temporary file, and turn an
    ``OSError`` into one naming ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp)
        raise


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file through ``<path>.tmp`` + rename; on ``OSError`` remove the temporary file and
    raise an ``OSError`` naming ``path``."""
    _atomic(path, lambda tmp: save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                                        metadata=metadata))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` through ``<path>.tmp`` + rename (as :func:`atomic_save_tensors`)."""
    _atomic(path, lambda tmp: tmp.write_text(text))


def save_result(post, path: Path, provenance: dict[str, Any]) -> Path:
    """Save a :class:`~bayesinv.posterior.Posterior` with its provenance: the hash goes into the safetensors
    header and into the JSON metadata (``extras["provenance"]``); both must match for the result to verify."""
    from bayesinv.posterior import _jsonable

    post.extras[PROVENANCE_KEY] = provenance
    path = Path(path)
    meta = json.dumps(post.metadata(), indent=2, default=_jsonable)
    # metadata first: a result whose tensors were replaced but whose JSON is old (or the reverse) fails the check
    atomic_write_text(path.with_name(path.name + ".json"), meta)
    atomic_save_tensors({"samples": post.samples}, path, metadata={PROVENANCE_KEY: provenance["hash"]})
    return path


def _header(path: Path) -> tuple[dict[str, str], dict[str, list[int]]]:
    """(metadata, {tensor: shape}) of a safetensors file; raises if it is truncated or not safetensors."""
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {}), {k: list(handle.get_slice(k).get_shape()) for k in handle.keys()}


def _file_check(path: Path, expected_hash: str) -> tuple[str | None, dict[str, list[int]]]:
    if not path.exists():
        return "missing", {}
    try:
        meta, shapes = _header(path)
    except Exception as exc:  # safetensors raises its own error type for truncated or foreign files
        return f"unreadable ({type(exc).__name__}: {exc})", {}
    recorded = meta.get(PROVENANCE_KEY)
    if recorded is None:
        return "written without provenance (an older bayesinv)", shapes
    if recorded != expected_hash:
        return "stale (produced by a different spec, prior, sampler or version)", shapes
    return None, shapes


def verify_case(path: Path, expected_hash: str, image_shape: tuple[int, ...]) -> str | None:
    """None if the case file at ``path`` is complete and matches ``expected_hash``, else why not."""
    problem, shapes = _file_check(Path(path), expected_hash)
    if problem is not None:
        return problem
    if shapes.get("truth") != list(image_shape) or "has_lesion" not in shapes:
        return f"incomplete (tensors {shapes})"
    return None


def verify_result(path: Path, expected_hash: str, num_samples: int) -> str | None:
    """None if the result at ``path`` (+ ``.json``) is complete and matches ``expected_hash``, else why not.

    Checks: the safetensors header opens and records the hash; the JSON parses and records the same hash
    and the same tensor shape; the chain count is ``num_samples`` (one for a point estimate).
    """
    path = Path(path)
    problem, shapes = _file_check(path, expected_hash)
    if problem is not None:
        return problem
    meta_path = path.with_name(path.name + ".json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        return f"its metadata {meta_path.name} is missing"
    except (OSError, ValueError) as exc:
        return f"its metadata {meta_path.name} is unreadable ({exc})"
    recorded = (meta.get("extras") or {}).get(PROVENANCE_KEY, {})
    if not isinstance(recorded, dict) or recorded.get("hash") != expected_hash:
        return f"its metadata {meta_path.name} belongs to another run"
    shape = shapes.get("samples")
    if shape is None or meta.get("shape") != shape:
        return f"incomplete (samples {shape}, metadata says {meta.get('shape')})"
    chains = 1 if meta.get("point_estimate") else num_samples
    if shape[0] != chains:
        return f"incomplete ({shape[0]} of {chains} chains)"
    return None


def clean_tmp(results: Path) -> list[Path]:
    """Remove leftover ``*.tmp`` files under ``results`` (call only while holding the study lock)."""
    removed = []
    for tmp in Path(results).rglob("*.tmp"):
        if tmp.is_file():
            _remove(tmp)
            removed.append(tmp)
    return removed
