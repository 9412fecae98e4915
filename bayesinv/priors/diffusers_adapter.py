"""Use a diffusion model saved by Hugging Face ``diffusers`` (a ``UNet2DModel`` + ``DDPMScheduler`` folder) as a
:class:`~bayesinv.priors.diffusion.DiffusionPrior`.

The folder is what ``DDPMPipeline.save_pretrained`` writes (``unet/`` and ``scheduler/`` subfolders) or a UNet
folder with a ``scheduler_config.json`` next to its ``config.json``. Only local files are read, weights only in
safetensors form (``use_safetensors=True``: no pickle). The scheduler's ``beta_schedule`` becomes a bayesinv
:class:`~bayesinv.priors.schedules.Schedule` (``linear``, ``scaled_linear``, ``squaredcos_cap_v2``) and its
``prediction_type`` the parametrisation (``epsilon`` -> eps, ``sample`` -> x0, ``v_prediction`` -> v); the
denoiser, score and samplers are then bayesinv's own. Note: most diffusers checkpoints model images in
``[-1, 1]``; the prior lives in the model's own pixel units (``pixel_range``, default ``(-1, 1)``, sets the
samplers' scale defaults).

``diffusers`` is an optional dependency (``pip install bayesinv[diffusers]``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from bayesinv.errors import WeightsError
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.schedules import Schedule, vp_cosine, vp_linear

__all__ = ["load_diffusers_prior", "schedule_from_diffusers_config", "DiffusersUNet"]

_PREDICTION = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


class DiffusersUNet(nn.Module):
    """``(x, t) -> UNet2DModel(x, t).sample``: a diffusers UNet under bayesinv's network contract."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, return_dict=False)[0]


def schedule_from_diffusers_config(config: dict) -> Schedule:
    """The VP schedule of a ``DDPMScheduler`` config (``num_train_timesteps``, ``beta_*``, ``beta_schedule``)."""
    steps = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    kind = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        betas = torch.as_tensor(config["trained_betas"], dtype=torch.float64)
    elif kind == "linear":
        return vp_linear(steps, start, end)
    elif kind == "scaled_linear":  # Stable Diffusion's: linear in sqrt(beta)
        betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    elif kind == "squaredcos_cap_v2":
        return vp_cosine(steps)
    else:
        raise ValueError(f"scheduler beta_schedule {kind!r} is not supported; use linear, scaled_linear, "
                         f"squaredcos_cap_v2 or trained_betas")
    abar = torch.cumprod(1 - betas, 0)
    return Schedule("vp", abar.sqrt(), (1 - abar).sqrt(), name=f"diffusers_{kind}")


def _find(folder: Path) -> tuple[Path, Path]:
    for unet_dir, sched in ((folder / "unet", folder / "scheduler" / "scheduler_config.json"),
                            (folder, folder / "scheduler_config.json")):
        if (unet_dir / "config.json").is_file() and sched.is_file():
            return unet_dir, sched
    raise WeightsError(f"{folder} is not a diffusers model folder: expected unet/config.json and "
                       f"scheduler/scheduler_config.json (DDPMPipeline.save_pretrained), or config.json with "
                       f"scheduler_config.json beside it")


def load_diffusers_prior(folder: str | Path, *, device: str | torch.device = "cpu", name: str = "",
                         pixel_range: tuple[float, float] = (-1.0, 1.0)) -> DiffusionPrior:
    """A :class:`DiffusionPrior` from a local diffusers folder (see the module docstring)."""
    try:
        from diffusers import UNet2DModel
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("load_diffusers_prior needs the optional dependency diffusers: "
                          "pip install 'bayesinv[diffusers]'") from err
    unet_dir, sched_path = _find(Path(folder))
    config = json.loads(sched_path.read_text())
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in _PREDICTION:
        raise ValueError(f"scheduler prediction_type must be one of {sorted(_PREDICTION)}, got {prediction!r}")
    unet = UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True, local_files_only=True)
    size = unet.config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    prior = DiffusionPrior(DiffusersUNet(unet), schedule_from_diffusers_config(config), _PREDICTION[prediction],
                           event_shape=(unet.config.in_channels, *size), name=name or Path(folder).name,
                           pixel_range=pixel_range)
    return prior.to(device)
