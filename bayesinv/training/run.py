"""What every ``bayesinv train`` target shares: train-split batches, the run folder, the loop's options, the outputs.

A training run reads a config TOML, draws fresh train-split phantoms every step (:func:`phantom_batches`),
runs :func:`~bayesinv.training.loop.train_loop` with the options of the config's ``[training]`` table
(:func:`train_from_table`) and writes into its folder (:func:`finish_run`): ``weights.safetensors`` (the EMA
weights), ``loss.csv``, ``train_info.json`` and ``SHA256SUMS``; checkpoints go to ``checkpoints/`` there.
Train seeds stay below the calibration split's offset, so training never sees a calibration or test image.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesinv.data.phantoms import SPLIT_SEEDS, phantom_dataset
from bayesinv.priors.networks.weights import INFO_NAME, WEIGHTS_NAME, save_weights, write_checksums
from bayesinv.training.loop import LOSS_LOG_NAME, TrainResult, train_loop

__all__ = ["phantom_batches", "config_batches", "train_from_table", "output_folder", "finish_run", "mean_tail",
           "device_name"]

_MAX_TRAIN_SEED = min(v for k, v in SPLIT_SEEDS.items() if k != "train")


def phantom_batches(batch_size: int, image_size: int, *, lesion_prob: float = 0.5, data_seed: int = 0,
                    family: str = "ellipses") -> Callable[[int], torch.Tensor]:
    """``step -> (batch_size, 1, size, size)`` fresh train-split phantoms, seeded by ``data_seed + step``."""

    def sample_batch(step: int) -> torch.Tensor:
        seed = int(data_seed) + int(step)
        if seed >= _MAX_TRAIN_SEED:
            raise ValueError(f"train seed {seed} would overlap the calibration/test splits "
                             f"(must be < {_MAX_TRAIN_SEED}); lower data_seed or the number of steps")
        return phantom_dataset("train", batch_size, image_size, seed=seed, lesion_prob=lesion_prob,
                               family=family).images

    return sample_batch


def config_batches(cfg: Mapping[str, Any]) -> Callable[[int], torch.Tensor]:
    """:func:`phantom_batches` of a config's ``[data]`` table and ``[training] batch_size``."""
    data = cfg["data"]
    return phantom_batches(int(cfg["training"]["batch_size"]), int(data["image_size"]),
                           lesion_prob=float(data.get("lesion_prob", 0.5)), data_seed=int(data.get("seed", 0)),
                           family=data.get("family", "ellipses"))


def train_from_table(model: nn.Module, loss_fn: Callable, sample_batch: Callable[[int], Any], train: Mapping[str, Any],
                     *, device: str | torch.device, checkpoint_dir: str | Path, resume: bool,
                     max_steps: int | None = None, max_minutes: float | None = None, progress: bool = True,
                     default_lr: float = 2e-4) -> TrainResult:
    """:func:`train_loop` with its options read from a config's ``[training]`` table (one place for the keys).

    ``max_steps``/``max_minutes`` override the table's; on CUDA, TF32 matrix products are allowed.
    """
    if str(device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return train_loop(model, loss_fn, sample_batch, steps=int(max_steps or train["max_steps"]),
                      lr=float(train.get("lr", default_lr)), weight_decay=float(train.get("weight_decay", 0.0)),
                      ema_decay=float(train.get("ema_decay", 0.999)), seed=int(train.get("seed", 0)),
                      device=device, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=int(train.get("checkpoint_every", 1000)), resume=resume,
                      max_minutes=max_minutes if max_minutes is not None else train.get("max_minutes"),
                      grad_clip=train.get("grad_clip", 1.0), warmup_steps=int(train.get("warmup_steps", 0)),
                      prefetch=int(train.get("prefetch", 2)), progress=progress)


def output_folder(config: str | Path | dict, out_dir: str | Path | None, cfg: Mapping[str, Any]) -> Path:
    """The training run's folder (default: the config file's), created, with the config written into it."""
    if out_dir is None and isinstance(config, dict):
        raise ValueError("out_dir is needed when the config is given as a dict")
    out = Path(out_dir) if out_dir is not None else Path(config).parent
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(config, dict):
        import tomli_w

        (out / "config.toml").write_text(tomli_w.dumps(dict(cfg)))
    elif Path(config).resolve() != (out / "config.toml").resolve():
        shutil.copyfile(config, out / "config.toml")
    return out


def finish_run(out: Path, network: nn.Module, result: TrainResult, cfg: Mapping[str, Any], *, device: str,
               info: Mapping[str, Any]) -> Path:
    """Write a finished run's outputs into ``out``; return the path of ``weights.safetensors``.

    ``network`` (the EMA network) goes to ``weights.safetensors``, the loss log to ``loss.csv``, the run's
    facts plus ``info`` to ``train_info.json``, and the checksums of the weights and config to ``SHA256SUMS``.
    """
    name = cfg.get("name", out.name)
    weights = save_weights(network, out / WEIGHTS_NAME, {"name": name, "steps": result.steps})
    shutil.copyfile(out / "checkpoints" / LOSS_LOG_NAME, out / LOSS_LOG_NAME)
    facts = {"name": name, "steps": result.steps, "stopped_by": result.stopped_by,
             "wall_seconds": round(result.wall_seconds, 1), "device": device_name(device),
             "torch": torch.__version__, "python": platform.python_version(), **info,
             "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / INFO_NAME).write_text(json.dumps(facts, indent=2) + "\n")
    write_checksums(out)
    return weights


def mean_tail(values: list[float], count: int) -> float:
    """The mean of the last ``count`` values (of all of them if fewer)."""
    tail = values[-count:]
    return sum(tail) / max(1, len(tail))


def device_name(device: str | torch.device) -> str:
    """The GPU's name for a CUDA device, else ``cpu (<processor>)``."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()})"
