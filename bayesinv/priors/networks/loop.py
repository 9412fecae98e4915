"""A generic, deterministic, resumable training loop: AdamW, EMA weights, safetensors checkpoints, loss log.

Any network is trained by ``train_loop(model, loss_fn, sample_batch, steps=..., ...)`` where

* ``sample_batch(step) -> batch`` is a *pure function of the step* (a tensor or a tuple of tensors on the
  CPU), e.g. fresh phantoms drawn from a generator seeded by the step;
* ``loss_fn(model, batch, generator) -> scalar`` draws any randomness it needs (noise, timesteps) from
  ``generator``, which is seeded by ``step_seed(seed, step)``.

Because every step's randomness is a function of ``(seed, step)``, a run is reproducible from its seed and a
run resumed from a checkpoint is identical to an uninterrupted one (on the CPU; GPU kernels may differ in the
last bits). Dropout draws from the global generator, so each step runs inside ``torch.random.fork_rng`` seeded
by ``(seed, step)``: the caller's global random state is left untouched.

Checkpoints are one safetensors file (model, EMA and optimizer state as tensors; step, wall time and the
optimizer's hyper-parameters as JSON metadata), written atomically, plus ``loss.csv``. Nothing is pickled.
The EMA uses ``decay_k = min(ema_decay, (1 + k) / (10 + k))`` at step ``k`` (the warm-up of Song et al. 2021's
code), and the learning rate a linear warm-up over ``warmup_steps``.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn
from tqdm.auto import tqdm

__all__ = ["TrainResult", "train_loop", "read_toml_config", "train_from_table", "output_folder", "ema_update",
           "save_checkpoint", "load_checkpoint", "save_weights", "load_weights", "sha256_file", "step_generator",
           "step_seed", "CHECKPOINT_NAME", "LOSS_LOG_NAME", "WEIGHTS_NAME", "CHECKSUMS_NAME", "INFO_NAME"]

CHECKPOINT_NAME = "checkpoint.safetensors"
LOSS_LOG_NAME = "loss.csv"
# the file names of a shipped model folder, shared by the prior, Dirac and baseline networks
WEIGHTS_NAME = "weights.safetensors"
CHECKSUMS_NAME = "SHA256SUMS"
INFO_NAME = "train_info.json"


class TrainResult(NamedTuple):
    model: nn.Module  # the trained model (last iterate)
    ema: nn.Module  # its exponential moving average (use this one for inference)
    steps: int  # optimisation steps done in total (over all resumptions)
    losses: list[float]  # the loss of every step
    wall_seconds: float  # training wall time in total (over all resumptions)
    stopped_by: str  # "steps" or "max_minutes"


def step_seed(seed: int, step: int) -> int:
    """A 32-bit seed mixed from ``(seed, step)`` by numpy's ``SeedSequence`` (the CPU generator keeps 32 bits)."""
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1)[0])


def step_generator(seed: int, step: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of step ``step``: ``Generator(device).manual_seed(step_seed(seed, step))``."""
    return torch.Generator(device=device).manual_seed(step_seed(seed, step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``module.state_dict()`` to a safetensors file (metadata values are stored as JSON strings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(module.state_dict(), path, {k: json.dumps(v) for k, v in (metadata or {}).items()})
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
        from bayesinv.errors import ShapeError

        raise ShapeError(f"weights {path} do not fit the network: tensor {', '.join(wrong[:3])} "
                         "(does config.toml match the weights?)")
    module.load_state_dict(state)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    return {k: json.loads(v) for k, v in meta.items()}


def save_checkpoint(path: str | Path, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer,
                    step: int, wall_seconds: float) -> Path:
    """Model, EMA and optimizer state in one safetensors file; the step and hyper-parameters in its metadata."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema/{k}": v for k, v in ema.state_dict().items()})
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim/{index}/{key}"] = torch.as_tensor(value)
    meta = {"format": "bayesinv-checkpoint-1", "step": str(int(step)), "wall_seconds": repr(float(wall_seconds)),
            "param_groups": json.dumps(opt["param_groups"])}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(tensors, path, meta)
    return path


def load_checkpoint(path: str | Path, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer,
                    device: str | torch.device = "cpu") -> tuple[int, float]:
    """Restore a checkpoint written by :func:`save_checkpoint`; return ``(step, wall_seconds)``."""
    tensors = load_file(str(path), device=str(device))
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if meta.get("format") != "bayesinv-checkpoint-1":
        raise ValueError(f"{path} is not a bayesinv checkpoint (format {meta.get('format')!r})")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
              for group in json.loads(meta["param_groups"])]  # JSON turned tuples (betas) into lists
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return int(meta["step"]), float(meta["wall_seconds"])


def _read_losses(path: Path, upto: int) -> list[float]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) < upto]
    return [float(r["loss"]) for r in rows]


def _write_losses(path: Path, losses: list[float]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss"])
        writer.writerows((i, repr(float(v))) for i, v in enumerate(losses))  # exact round trip
    os.replace(tmp, path)


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return type(batch)(*(_to_device(b, device) for b in batch)) if hasattr(batch, "_fields") else \
        type(batch)(_to_device(b, device) for b in batch)


def train_loop(model: nn.Module, loss_fn: Callable, sample_batch: Callable[[int], Any], *, steps: int,
               lr: float = 2e-4, weight_decay: float = 0.0, ema_decay: float = 0.999, seed: int = 0,
               device: str | torch.device = "cpu", checkpoint_dir: str | Path | None = None,
               checkpoint_every: int = 1000, resume: bool = True, max_minutes: float | None = None,
               grad_clip: float | None = 1.0, warmup_steps: int = 0, progress: bool = True,
               prefetch: int = 2) -> TrainResult:
    """Minimise ``loss_fn`` with AdamW for ``steps`` steps (or until ``max_minutes``); see the module docstring.

    Parameters
    ----------
    model : the network (moved to ``device``).
    loss_fn : ``(model, batch, generator) -> scalar tensor``.
    sample_batch : ``step -> batch`` on the CPU; the next ``prefetch`` batches are drawn ahead in as many threads
        (0: no threads). ``sample_batch`` must be thread-safe (a pure function of the step is).
    steps : total number of optimisation steps (counting those of a resumed checkpoint).
    checkpoint_dir : where ``checkpoint.safetensors`` and ``loss.csv`` go (every ``checkpoint_every`` steps and
        at the end); with ``resume`` an existing checkpoint there is continued.
    max_minutes : stop (and checkpoint) after this much wall time in this call.

    Returns
    -------
    TrainResult with the model, its EMA, the step count, per-step losses and wall time.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    device = torch.device(device)
    model = model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start, wall_before, losses = 0, 0.0, []
    if ckpt_dir is not None and resume and (ckpt_dir / CHECKPOINT_NAME).exists():
        start, wall_before = load_checkpoint(ckpt_dir / CHECKPOINT_NAME, model, ema, optimizer, device)
        losses = _read_losses(ckpt_dir / LOSS_LOG_NAME, start)

    unread: list[torch.Tensor] = []

    def checkpoint(step: int, wall: float) -> None:
        losses.extend(torch.stack(unread).tolist() if unread else [])
        unread.clear()
        if ckpt_dir is not None:
            save_checkpoint(ckpt_dir / CHECKPOINT_NAME, model, ema, optimizer, step, wall)
            _write_losses(ckpt_dir / LOSS_LOG_NAME, losses)

    t0 = time.perf_counter()
    stopped_by, step = "steps", start
    devices = [device.index or 0] if device.type == "cuda" else []
    uses_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    workers = max(1, int(prefetch))
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=steps, initial=start, disable=not progress,
                                                               desc="train", dynamic_ncols=True) as bar:
        # batches step+1 .. step+prefetch are drawn in threads while this step runs (order is kept)
        pending = {k: pool.submit(sample_batch, k) for k in range(start, min(steps, start + int(prefetch)))}
        model.train()
        for step in range(start, steps):
            batch = pending.pop(step).result() if step in pending else sample_batch(step)
            ahead = step + int(prefetch)
            if prefetch and ahead < steps:
                pending[ahead] = pool.submit(sample_batch, ahead)
            batch = _to_device(batch, device)
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr
            with torch.random.fork_rng(devices=devices, enabled=uses_dropout):
                if uses_dropout:  # dropout draws from the global generator: seed it inside the fork only
                    torch.manual_seed(step_seed(seed, step))
                loss = loss_fn(model, batch, step_generator(seed, step, device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
            unread.append(loss.detach())
            bar.update(1)
            if len(unread) == 50:  # read losses back in blocks: one device sync per 50 steps
                losses.extend(torch.stack(unread).tolist())
                unread.clear()
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4g}")
            elapsed = time.perf_counter() - t0
            if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                checkpoint(step + 1, wall_before + elapsed)
            if max_minutes is not None and elapsed > 60 * max_minutes and step + 1 < steps:
                stopped_by = "max_minutes"
                step += 1
                break
        else:
            step = steps
        for future in pending.values():
            future.cancel()
    wall = wall_before + time.perf_counter() - t0
    checkpoint(step, wall)
    model.eval()
    return TrainResult(model, ema, step, losses, wall, stopped_by)


def read_toml_config(config: str | Path | dict, sections: Sequence[str], *, example: str) -> dict[str, Any]:
    """Read a training config TOML (or pass a dict through), checking that it has ``sections``.

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
