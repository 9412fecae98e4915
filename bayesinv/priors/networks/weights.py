"""The files of a model folder: safetensors weights, their SHA-256 checksums and the config TOML.

Every trained network in bayesinv (diffusion priors, Dirac networks, learned baselines) ships as
``models/<name>/{config.toml, weights.safetensors, SHA256SUMS, MODEL_CARD.md}``. This module reads and
writes those files and nothing else, so loading a network for inference needs no training code:
:func:`load_weights` reads a safetensors state dict (a format that stores tensors only, so loading
cannot execute code), :func:`write_checksums` writes ``SHA256SUMS`` in ``sha256sum`` format, and
:func:`read_toml_config` reads a config, checking its sections. Checksums are verified by
:func:`bayesinv.priors.hub.verify_checksums`.

>>> WEIGHTS_NAME, CHECKSUMS_NAME
('weights.safetensors', 'SHA256SUMS')
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from bayesinv.errors import ShapeError

__all__ = ["save_weights", "load_weights", "sha256_file", "write_checksums", "read_toml_config", "atomic_save",
           "WEIGHTS_NAME", "CHECKSUMS_NAME", "INFO_NAME"]

# the file names of a shipped model folder, shared by the prior, Dirac and baseline networks
WEIGHTS_NAME = "weights.safetensors"
CHECKSUMS_NAME = "SHA256SUMS"
INFO_NAME = "train_info.json"


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write ``tensors`` (copied to the CPU) to a safetensors file through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``module.state_dict()`` to a safetensors file (metadata values are stored as JSON strings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(module.state_dict(), path, {k: json.dumps(v) for k, v in (metadata or {}).items()})
    return path


def load_weights(module: nn.Module, path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a safetensors state dict into ``module`` (strict: names and shapes must match, else ``ValueError`` /
    :class:`~bayesinv.errors.ShapeError` naming the file and tensor); return the metadata."""
    state = load_file(str(path), device=str(device))
    missing, unexpected = set(module.state_dict()) - set(state), set(state) - set(module.state_dict())
    if missing or unexpected:
        raise ValueError(f"weights {path} do not fit the network: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]} (does config.toml match the weights?)")
    expected = module.state_dict()
    wrong = [f"{k}: {tuple(v.shape)} (network: {tuple(expected[k].shape)})" for k, v in state.items()
             if v.shape != expected[k].shape]
    if wrong:
        raise ShapeError(f"weights {path} do not fit the network: tensor {', '.join(wrong[:3])} "
                         "(does config.toml match the weights?)")
    module.load_state_dict(state)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    return {k: json.loads(v) for k, v in meta.items()}


def write_checksums(folder: str | Path, names: tuple[str, ...] = (WEIGHTS_NAME, "config.toml")) -> Path:
    """Write ``SHA256SUMS`` (``<hex>  <name>`` lines, as ``sha256sum`` does) for ``names`` in ``folder``."""
    folder = Path(folder)
    lines = [f"{sha256_file(folder / name)}  {name}\n" for name in names]
    (folder / CHECKSUMS_NAME).write_text("".join(lines))
    return folder / CHECKSUMS_NAME


def read_toml_config(config: str | Path | dict, sections: Sequence[str], *, example: str) -> dict[str, Any]:
    """Read a model config TOML (or pass a dict through), checking that it has ``sections``.

    ``example`` names a shipped config to point the user at in the error message.
    """
    if isinstance(config, dict):
        cfg = config
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        with open(path, "rb") as handle:
            cfg = tomllib.load(handle)
    missing = [name for name in sections if name not in cfg]
    if missing:
        raise ValueError(f"config is missing section(s) {missing}; see {example}")
    return cfg
