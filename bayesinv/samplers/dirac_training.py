r"""Training and loading Dirac networks (Fabian, Tinaz & Soltanolkotabi 2024).

The network ``Phi(y_t, t) = y_t + UNet(y_t, time_scale * t)`` (the reference's residual prediction) is trained
on the degradation process ``y_t = A_t(x0) + sigma_t z`` (:mod:`bayesinv.operators.degradation`) with the
incremental reconstruction loss of the paper (eq. 9), ``t ~ U(0, 1)``, ``tau = max(t - lookahead, 0)``:

    L(lookahead) = E_{x0, t, z} w(t) || A_tau(Phi(y_t, t)) - A_tau(x0) ||^2,   w(t) = sigma_1^2 / sigma_t^2

(the reference's ``1 / sigma_t^2`` weight, normalised to 1 at ``t = 1``). ``lookahead = 1`` is the plain
``x0`` loss (``tau = 0``, ``A_0 = I``): the setting of the authors' deblurring trainer
(``weighted_mse_x_loss``); ``lookahead = 0`` is their ``weighted_mse_loss``. The loss is averaged over pixels.

Data: fresh train-split phantoms every step (``phantom_dataset("train", batch, size, seed=seed + step,
lesion_prob=0.5)``, as :func:`bayesinv.priors.training.phantom_batches`); the loop (AdamW, EMA, safetensors
checkpoints, resumption, loss log) is :func:`bayesinv.priors.networks.loop.train_loop`.

``train_from_config`` reads ``models/dirac-*/config.toml`` and writes ``weights.safetensors`` (EMA),
``loss.csv``, ``train_info.json`` and ``SHA256SUMS`` into its folder; :func:`load_dirac` reads a model folder
back after verifying the checksums (never unpickling).
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesinv.errors import WeightsError
from bayesinv.priors.hub import resolve_model, verify_checksums
from bayesinv.operators.degradation import Degradation, GeometricNoise, degradation_from_config
from bayesinv.priors.networks.loop import (CHECKSUMS_NAME, INFO_NAME, LOSS_LOG_NAME, WEIGHTS_NAME, load_weights,
                                           output_folder, read_toml_config, save_weights, train_from_table)
from bayesinv.priors.networks.unet import UNet, count_parameters, inference_layout
from bayesinv.priors.training import phantom_batches, write_checksums
from bayesinv.samplers.dirac import DiracModel

__all__ = ["DiracNetwork", "dirac_loss", "read_config", "build_model_parts", "train_from_config", "load_dirac",
           "WEIGHTS_NAME", "CHECKSUMS_NAME"]


class DiracNetwork(nn.Module):
    """``Phi(y_t, t) = y_t + UNet(y_t, time_scale * t)``: ``(B, C, H, W), (B,) -> (B, C, H, W)``."""

    def __init__(self, unet: UNet, time_scale: float = 1000.0):
        super().__init__()
        self.unet = unet
        self.time_scale = float(time_scale)

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return y_t + self.unet(y_t, self.time_scale * t.to(y_t.dtype))


def dirac_loss(network: nn.Module, x0: torch.Tensor, generator: torch.Generator, *, degradation: Degradation,
               noise: GeometricNoise, lookahead: float) -> torch.Tensor:
    """The weighted incremental reconstruction loss of the module docstring for one batch ``x0: (B, C, H, W)``."""
    batch = x0.shape[0]
    t = torch.rand(batch, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    z = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    sigma = noise.std(t).reshape(batch, 1, 1, 1)
    y_t = degradation.apply(x0, t) + sigma * z
    x0_hat = network(y_t, t)
    tau = (t - lookahead).clamp_min(0.0)
    resid = degradation.apply(x0_hat, tau) - degradation.apply(x0, tau)
    weight = (noise.sigma_max / sigma) ** 2
    return (weight * resid**2).mean()


def read_config(config: str | Path | dict) -> dict[str, Any]:
    """Read a Dirac config TOML (or pass a dict through), checking its sections."""
    return read_toml_config(config, ("data", "degradation", "noise", "network", "training"),
                            example="models/dirac-blur32/config.toml")


def build_model_parts(cfg: dict) -> tuple[DiracNetwork, Degradation, GeometricNoise]:
    """The untrained network, the degradation schedule and the noise schedule a config describes."""
    size = int(cfg["data"]["image_size"])
    deg_cfg = dict(cfg["degradation"])
    deg_cfg.setdefault("in_shape", [1, size, size])
    degradation = degradation_from_config(deg_cfg)
    noise = GeometricNoise.create(float(cfg["noise"]["sigma_min"]), float(cfg["noise"]["sigma_max"]))
    options = dict(cfg["network"])
    time_scale = float(options.pop("time_scale", 1000.0))
    arch = options.pop("architecture", "unet")
    if arch != "unet":
        raise ValueError(f"[network] architecture must be 'unet', got {arch!r}")
    return DiracNetwork(UNet(image_size=size, **options), time_scale), degradation, noise


def train_from_config(config: str | Path | dict, out_dir: str | Path | None = None, device: str = "cpu",
                      resume: bool = True, target: str = "dirac", *, max_steps: int | None = None,
                      max_minutes: float | None = None, progress: bool = True) -> Path:
    """Train the Dirac network a config describes; return the path of ``weights.safetensors``.

    This is what ``bayesinv train dirac --config models/dirac-blur32/config.toml --device cuda`` calls;
    ``max_steps``/``max_minutes`` override ``[training]`` (short smoke runs).
    """
    if target != "dirac":
        raise ValueError(f"bayesinv.samplers.dirac_training trains target 'dirac', got {target!r}")
    cfg = read_config(config)
    out = output_folder(config, out_dir, cfg)
    data, train = cfg["data"], cfg["training"]
    with torch.random.fork_rng(devices=[]):  # the initial weights are a function of the seed; global state untouched
        torch.manual_seed(int(train.get("seed", 0)))
        network, degradation, noise = build_model_parts(cfg)
    lookahead = float(train.get("lookahead", 1.0))
    if not 0.0 <= lookahead <= 1.0:
        raise ValueError(f"[training] lookahead must lie in [0, 1], got {lookahead}")
    batches = phantom_batches(int(train["batch_size"]), int(data["image_size"]),
                              lesion_prob=float(data.get("lesion_prob", 0.5)), data_seed=int(data.get("seed", 0)),
                              family=data.get("family", "ellipses"))

    def loss_fn(model, x0, generator):
        return dirac_loss(model, x0, generator, degradation=degradation, noise=noise, lookahead=lookahead)

    result = train_from_table(network, loss_fn, batches, train, device=device,
                              checkpoint_dir=out / "checkpoints", resume=resume, max_steps=max_steps,
                              max_minutes=max_minutes, progress=progress)
    name = cfg.get("name", out.name)
    weights = save_weights(result.ema, out / WEIGHTS_NAME, {"name": name, "steps": result.steps})
    shutil.copyfile(out / "checkpoints" / LOSS_LOG_NAME, out / LOSS_LOG_NAME)
    tail = result.losses[-500:]
    info = {"name": name, "steps": result.steps, "stopped_by": result.stopped_by,
            "wall_seconds": round(result.wall_seconds, 1), "device": _device_name(device), "torch": torch.__version__,
            "python": platform.python_version(), "parameters": count_parameters(network),
            "batch_size": int(train["batch_size"]), "lookahead": lookahead,
            "final_loss_mean_last_500": sum(tail) / max(1, len(tail)), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
    write_checksums(out)
    return weights


def _device_name(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()})"


def _verify(folder: Path) -> None:
    for name in (WEIGHTS_NAME, "config.toml", CHECKSUMS_NAME):
        if not (folder / name).is_file():
            raise WeightsError(f"Dirac model folder {folder} has no {name}; expected config.toml, {WEIGHTS_NAME} "
                               f"and {CHECKSUMS_NAME} (train it with `bayesinv train dirac --config ...`)")
    verify_checksums(folder, required=(WEIGHTS_NAME, "config.toml"))


def load_dirac(name_or_path: str | Path, device: str | torch.device = "cpu") -> DiracModel:
    """Load a trained Dirac model (``models/<name>/`` or a folder) after verifying ``SHA256SUMS``.

    Returns a :class:`~bayesinv.samplers.dirac.DiracModel` whose denoiser runs the EMA network in eval mode
    (float32 on ``device``) and returns ``x0_hat`` in the caller's dtype and device. Loaded models are kept
    per (folder, file checksums, device), so repeated calls (one per measurement) cost one checksum pass.
    """
    folder = resolve_model(name_or_path, kind="Dirac model")  # a name: models root only, never the working directory
    _verify(folder)
    key = (str(folder.resolve()), (folder / CHECKSUMS_NAME).read_text(), str(device))
    if key not in _LOADED:
        _LOADED[key] = _load_verified(folder, device)
    return _LOADED[key]


_LOADED: dict[tuple[str, str, str], DiracModel] = {}


def _load_verified(folder: Path, device: str | torch.device) -> DiracModel:
    cfg = read_config(folder / "config.toml")
    with torch.random.fork_rng(devices=[]):  # the random initialisation is overwritten; leave global state alone
        network, degradation, noise = build_model_parts(cfg)
    load_weights(network, folder / WEIGHTS_NAME, device=device)
    network = inference_layout(network.to(device).eval().requires_grad_(False))

    def denoiser(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = network(y_t.to(device=device, dtype=torch.float32), t.to(device=device, dtype=torch.float32))
        return out.to(device=y_t.device, dtype=y_t.dtype)

    return DiracModel(denoiser, degradation, noise, str(cfg.get("name", folder.name)))
