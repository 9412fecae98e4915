r"""Training a diffusion prior by denoising score matching on generated phantoms.

The loss (Ho et al. 2020, eq. 14; Vincent 2011) for a network ``F`` of parametrisation ``p``:

    L = E_{x0 ~ data, t ~ U{0..T-1}, eps ~ N(0, I)} || F(c_in x_t, t) - target_p(x0, eps, t) ||^2,
    x_t = alpha_t x0 + sigma_t eps,

with ``target_eps = eps`` (the "simple" DDPM loss), ``target_x0 = x0``, ``target_v = alpha eps - sigma x0``.
Its minimiser gives the MMSE denoiser, hence the score (Tweedie).

Data: every step draws a fresh batch of random-ellipse phantoms from the *train* split, with the step as
seed (``phantom_dataset("train", batch_size, size, seed=data_seed + step, lesion_prob=...)``), lesions inserted
with probability ``lesion_prob`` (0.5 for the shipped priors). Train seeds stay below the calibration split's
offset, so training never sees a calibration or test image. The loop (AdamW, EMA, checkpoints, resumption)
is :func:`~bayesinv.priors.networks.loop.train_loop`.

``train_from_config`` reads a ``config.toml`` (see ``models/phantom32/config.toml``) and writes into its folder
(or ``out_dir``): ``weights.safetensors`` (EMA weights of the network), ``loss.csv``, ``train_info.json``,
``SHA256SUMS``; checkpoints go to ``checkpoints/`` there.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from bayesinv.data.phantoms import SPLIT_SEEDS, phantom_dataset
from bayesinv.priors.networks.denoiser import Denoiser, training_target
from bayesinv.priors.networks.loop import (CHECKSUMS_NAME, INFO_NAME, LOSS_LOG_NAME, WEIGHTS_NAME, output_folder,
                                           read_toml_config, save_weights, sha256_file, train_from_table)
from bayesinv.priors.networks.unet import UNet, count_parameters
from bayesinv.priors.schedules import Schedule, make_schedule

__all__ = ["diffusion_loss", "phantom_batches", "read_config", "build_network", "build_schedule",
           "train_from_config", "write_checksums", "WEIGHTS_NAME", "CHECKSUMS_NAME", "INFO_NAME"]

_MAX_TRAIN_SEED = min(v for k, v in SPLIT_SEEDS.items() if k != "train")


def diffusion_loss(denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The denoising loss of the module docstring for one batch ``x0: (B, C, H, W)``, ``t`` uniform."""
    schedule = denoiser.schedule
    t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=generator, device=generator.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    t = t.cpu()
    alpha, sigma = schedule.coefficients(t, x0)
    x_t = alpha * x0 + sigma * eps
    target = training_target(denoiser.parametrisation, x0, eps, alpha, sigma)
    return F.mse_loss(denoiser.raw(x_t, t), target)


def phantom_batches(batch_size: int, image_size: int, *, lesion_prob: float = 0.5, data_seed: int = 0,
                    family: str = "ellipses"):
    """``step -> (batch_size, 1, size, size)`` fresh train-split phantoms, seeded by ``data_seed + step``."""

    def sample_batch(step: int) -> torch.Tensor:
        seed = int(data_seed) + int(step)
        if seed >= _MAX_TRAIN_SEED:
            raise ValueError(f"train seed {seed} would overlap the calibration/test splits "
                             f"(must be < {_MAX_TRAIN_SEED}); lower data_seed or the number of steps")
        return phantom_dataset("train", batch_size, image_size, seed=seed, lesion_prob=lesion_prob,
                               family=family).images

    return sample_batch


def read_config(config: str | Path | dict) -> dict[str, Any]:
    """Read a prior config TOML (or pass a dict through), checking the sections it needs."""
    return read_toml_config(config, ("data", "schedule", "network", "training"), example="models/phantom32/config.toml")


def build_schedule(cfg: dict) -> Schedule:
    """The schedule of ``[schedule]``: ``name`` plus its keyword arguments."""
    options = dict(cfg["schedule"])
    return make_schedule(options.pop("name"), **options)


def build_network(cfg: dict) -> UNet:
    """The U-Net of ``[network]`` (``architecture = "unet"``) for ``[data] image_size``."""
    options = dict(cfg["network"])
    arch = options.pop("architecture", "unet")
    options.pop("parametrisation", None)
    if arch != "unet":
        raise ValueError(f"[network] architecture must be 'unet', got {arch!r}")
    return UNet(image_size=int(cfg["data"]["image_size"]), **options)


def write_checksums(folder: str | Path, names: tuple[str, ...] = (WEIGHTS_NAME, "config.toml")) -> Path:
    """Write ``SHA256SUMS`` (``<hex>  <name>`` lines, as ``sha256sum`` does) for ``names`` in ``folder``."""
    folder = Path(folder)
    lines = [f"{sha256_file(folder / name)}  {name}\n" for name in names]
    (folder / CHECKSUMS_NAME).write_text("".join(lines))
    return folder / CHECKSUMS_NAME


def train_from_config(config: str | Path, out_dir: str | Path | None = None, device: str = "cpu",
                      resume: bool = True, target: str = "prior", *, max_steps: int | None = None,
                      max_minutes: float | None = None, progress: bool = True) -> Path:
    """Train the prior a config describes; return the path of ``weights.safetensors``.

    ``max_steps``/``max_minutes`` override ``[training]`` (e.g. a short smoke run). This is what
    ``bayesinv train prior --config models/phantom32/config.toml --device cuda`` calls.
    """
    if target != "prior":
        raise ValueError(f"bayesinv.priors.training trains target 'prior', got {target!r}")
    cfg = read_config(config)
    out = output_folder(config, out_dir, cfg)
    data, train = cfg["data"], cfg["training"]
    schedule = build_schedule(cfg)
    denoiser = Denoiser(build_network(cfg), schedule, cfg["network"].get("parametrisation", "eps"))
    batches = phantom_batches(int(train["batch_size"]), int(data["image_size"]),
                              lesion_prob=float(data.get("lesion_prob", 0.5)),
                              data_seed=int(data.get("seed", 0)), family=data.get("family", "ellipses"))
    result = train_from_table(denoiser, diffusion_loss, batches, train, device=device,
                              checkpoint_dir=out / "checkpoints", resume=resume, max_steps=max_steps,
                              max_minutes=max_minutes, progress=progress)
    weights = save_weights(result.ema.network, out / WEIGHTS_NAME,
                           {"name": cfg.get("name", out.name), "steps": result.steps})
    shutil.copyfile(out / "checkpoints" / LOSS_LOG_NAME, out / LOSS_LOG_NAME)
    info = {"name": cfg.get("name", out.name), "steps": result.steps, "stopped_by": result.stopped_by,
            "wall_seconds": round(result.wall_seconds, 1), "device": _device_name(device),
            "torch": torch.__version__, "python": platform.python_version(),
            "parameters": count_parameters(denoiser.network), "batch_size": int(train["batch_size"]),
            "final_loss_mean_last_500": sum(result.losses[-500:]) / max(1, len(result.losses[-500:])),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
    write_checksums(out)
    return weights


def _device_name(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()})"
