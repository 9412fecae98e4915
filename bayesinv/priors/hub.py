"""Load a committed diffusion prior from ``models/<name>/``, verifying its checksum; never unpickle.

A model folder holds ``config.toml`` (architecture, schedule, parametrisation, training settings),
``weights.safetensors`` (the EMA weights), ``SHA256SUMS`` (``sha256sum`` format) and ``MODEL_CARD.md``.
:func:`load_prior` checks that each of them exists and that every file listed in ``SHA256SUMS`` hashes to
the recorded value before anything is read, then builds the network from the config and loads the
safetensors weights (a format that stores tensors only, so loading cannot execute code). An optional
``[data] pixel_range = [lo, hi]`` (default ``[0, 1]``) tells samplers the training images' range, from which they
take their scale defaults (score-SDE's consistency cutoff, annealed Langevin's top noise level).

The models folder is, in order: the ``root`` argument, the ``BAYESINV_MODELS`` environment variable, or
``models/`` at the root of the bayesinv checkout (the package is installed with ``pip install -e .``).
A model *name* (``"phantom32"``) is looked up only there, never in the working directory; a folder elsewhere
is given as a *path*: a ``Path``, or text with a path separator or starting with ``.`` or ``~``
(``"./my-model"``, ``"/data/my-model"``); see :func:`resolve_model`. ``SHA256SUMS`` must list every file
that loading reads (the weights and ``config.toml``) and only files inside the folder.

>>> models_root("/data/bayesinv-models").as_posix()
'/data/bayesinv-models'
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from bayesinv.errors import ChecksumMismatch, WeightsError
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.networks.config import build_network, build_schedule, read_config
from bayesinv.priors.networks.weights import CHECKSUMS_NAME, WEIGHTS_NAME, load_weights, sha256_file

__all__ = ["models_root", "model_dir", "resolve_model", "is_path_like", "available_models", "verify_checksums", "load_prior", "build_prior",
           "REQUIRED_FILES"]

REQUIRED_FILES = ("config.toml", WEIGHTS_NAME, CHECKSUMS_NAME, "MODEL_CARD.md")


def models_root(root: str | Path | None = None) -> Path:
    """The folder that holds ``<name>/`` model folders (see the module docstring for the search order)."""
    if root is not None:
        return Path(root)
    env = os.environ.get("BAYESINV_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def is_path_like(name: str | os.PathLike) -> bool:
    """True if ``name`` is given as a path (a ``Path``, or text with a separator or a leading ``.`` or ``~``)."""
    if isinstance(name, os.PathLike):
        return True
    text = str(name)
    return os.sep in text or "/" in text or (os.altsep is not None and os.altsep in text) or text.startswith((".", "~"))


def resolve_model(name: str | os.PathLike, root: str | Path | None = None, *, kind: str = "model") -> Path:
    """The folder of a model: ``<models root>/<name>`` for a plain name, or the folder a path names.

    A plain name never resolves against the working directory, so the same spec loads the same model from
    any directory. Raises :class:`WeightsError` naming what was looked for when the folder does not exist.
    """
    if is_path_like(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"no {kind} folder {str(name)!r}: {folder.resolve()} is not a folder")
        return folder
    text = str(name)
    if not text or text in (".", ".."):
        raise WeightsError(f"no {kind} {text!r}: give a model name or a folder path")
    folder = models_root(root) / text
    if not folder.is_dir():
        known = available_models(root)
        raise WeightsError(f"no {kind} {text!r}: {folder} does not exist; available in {models_root(root)}: "
                           f"{known} (set BAYESINV_MODELS or pass root= to look elsewhere, or give a folder as a "
                           f"path such as './{text}')")
    return folder


def model_dir(name: str | Path, root: str | Path | None = None) -> Path:
    """The folder of model ``name`` (:func:`resolve_model`)."""
    return resolve_model(name, root)


def available_models(root: str | Path | None = None) -> list[str]:
    """Names of the model folders (those with a ``config.toml``) under the models root."""
    base = models_root(root)
    return sorted(p.name for p in base.iterdir() if (p / "config.toml").exists()) if base.is_dir() else []


def verify_checksums(folder: str | Path, required: tuple[str, ...] = (WEIGHTS_NAME, "config.toml")) -> dict[str, str]:
    """Check every file listed in ``folder/SHA256SUMS``; return ``{name: hex}``.

    Raises :class:`WeightsError` if ``SHA256SUMS`` or a listed file is missing, a ``required`` file (every
    file that loading reads: the weights and ``config.toml``) is not listed, or an entry points outside the
    folder (an absolute path, ``..``, a link leading out); :class:`ChecksumMismatch` if a file's SHA-256
    differs from the recorded one. Every model folder (priors, Dirac networks, learned baselines) is
    verified here.
    """
    folder = Path(folder)
    sums_path = folder / CHECKSUMS_NAME
    if not sums_path.is_file():
        raise WeightsError(f"{sums_path} is missing: refusing to load unverified weights")
    recorded = {}
    for line_no, line in enumerate(sums_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise WeightsError(f"{sums_path}:{line_no}: expected '<64 hex digits>  <file name>', got {line!r}")
        entry = parts[1].lstrip("*")
        if Path(entry).is_absolute() or entry.startswith("~") or ".." in Path(entry).parts or "\\" in entry:
            raise WeightsError(f"{sums_path}:{line_no}: {entry!r} is outside the model folder; {CHECKSUMS_NAME} may "
                               "list only files inside it")
        recorded[entry] = parts[0].lower()
    for name in required:
        if name not in recorded:
            raise WeightsError(f"{sums_path} does not list {name}: refusing to load unverified weights")
    inside = folder.resolve()
    for name, expected in recorded.items():
        path = folder / name
        if path.exists() and not path.resolve().is_relative_to(inside):
            raise WeightsError(f"{sums_path}: {name!r} leads outside the model folder (to {path.resolve()})")
        if not path.is_file():
            raise WeightsError(f"{path} is listed in {CHECKSUMS_NAME} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumMismatch(f"{path}: SHA-256 is {actual}, but {CHECKSUMS_NAME} records {expected} "
                                   f"(the file is corrupt, truncated, a Git LFS pointer, or was changed)")
    return recorded


def load_prior(name: str | Path = "phantom32", *, root: str | Path | None = None,
               device: str | torch.device = "cpu") -> DiffusionPrior:
    """The :class:`DiffusionPrior` committed in ``models/<name>/`` (or the folder ``name``), checksum-verified.

    Parameters
    ----------
    name : a model name (``"phantom32"``, ``"phantom64"``) or a path to a model folder.
    root : the models folder (default: ``BAYESINV_MODELS`` or the checkout's ``models/``).
    device : where the network is put.

    Raises
    ------
    WeightsError : a required file (config, weights, SHA256SUMS, model card) is missing.
    ChecksumMismatch : a file differs from its recorded SHA-256.
    """
    folder = model_dir(name, root)
    for required in REQUIRED_FILES:
        if not (folder / required).is_file():
            raise WeightsError(f"model folder {folder} lacks {required} (needs {', '.join(REQUIRED_FILES)})")
    verify_checksums(folder, required=(WEIGHTS_NAME, "config.toml"))
    return build_prior(folder, device=device)


def build_prior(folder: str | Path, *, device: str | torch.device = "cpu") -> DiffusionPrior:
    """The prior of a model folder from its ``config.toml`` and ``weights.safetensors``, *without* the checks of
    :func:`load_prior` (for tools that write the model card of a freshly trained model)."""
    folder = Path(folder)
    cfg = read_config(folder / "config.toml")
    network = build_network(cfg)
    load_weights(network, folder / WEIGHTS_NAME, device="cpu")
    prior = DiffusionPrior(network, build_schedule(cfg), cfg["network"].get("parametrisation", "eps"),
                           name=cfg.get("name", folder.name),
                           pixel_range=tuple(cfg["data"].get("pixel_range", (0.0, 1.0))))
    return prior.to(device)
