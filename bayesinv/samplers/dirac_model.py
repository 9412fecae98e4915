r"""A Dirac reconstruction model (Fabian, Tinaz & Soltanolkotabi 2024): the network, its process, its loading.

:class:`DiracModel` bundles what :func:`~bayesinv.samplers.dirac.sample_dirac` needs: a denoiser
``x0_hat = Phi(y_t, t)``, the degradation ``A_t`` and the noise schedule ``sigma_t`` it was trained on
(:mod:`bayesinv.operators.degradation`). The trained network is :class:`DiracNetwork`,
``Phi(y_t, t) = y_t + UNet(y_t, time_scale * t)`` (the reference's residual prediction); a model folder
``models/dirac-*/`` holds its ``config.toml`` (``[data]``, ``[degradation]``, ``[noise]``, ``[network]``,
``[training]``), ``weights.safetensors`` and ``SHA256SUMS``. :func:`load_dirac` verifies the checksums and
reads the safetensors weights (never unpickling); training lives in :mod:`bayesinv.training.dirac`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from bayesinv.errors import WeightsError
from bayesinv.operators.degradation import Degradation, GeometricNoise, degradation_from_config
from bayesinv.priors.hub import resolve_model, verify_checksums
from bayesinv.priors.networks.unet import UNet, inference_layout
from bayesinv.priors.networks.weights import CHECKSUMS_NAME, WEIGHTS_NAME, load_weights, read_toml_config

__all__ = ["DiracModel", "DiracNetwork", "read_config", "build_model_parts", "load_dirac"]


class DiracModel(NamedTuple):
    """A Dirac reconstruction network with the process it was trained on.

    ``denoiser(y_t: (B, *in_shape), t: (B,)) -> x0_hat`` (any callable: a trained network wrapper, or an
    oracle in tests); ``degradation`` gives ``A_t``; ``noise`` gives ``sigma_t``.
    """

    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    degradation: Degradation
    noise: GeometricNoise
    name: str = ""


class DiracNetwork(nn.Module):
    """``Phi(y_t, t) = y_t + UNet(y_t, time_scale * t)``: ``(B, C, H, W), (B,) -> (B, C, H, W)``."""

    def __init__(self, unet: UNet, time_scale: float = 1000.0):
        super().__init__()
        self.unet = unet
        self.time_scale = float(time_scale)

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return y_t + self.unet(y_t, self.time_scale * t.to(y_t.dtype))


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


def _verify(folder: Path) -> None:
    for name in (WEIGHTS_NAME, "config.toml", CHECKSUMS_NAME):
        if not (folder / name).is_file():
            raise WeightsError(f"Dirac model folder {folder} has no {name}; expected config.toml, {WEIGHTS_NAME} "
                               f"and {CHECKSUMS_NAME} (train it with `bayesinv train dirac --config ...`)")
    verify_checksums(folder, required=(WEIGHTS_NAME, "config.toml"))


def load_dirac(name_or_path: str | Path, device: str | torch.device = "cpu") -> DiracModel:
    """Load a trained Dirac model (``models/<name>/`` or a folder) after verifying ``SHA256SUMS``.

    Returns a :class:`DiracModel` whose denoiser runs the EMA network in eval mode (float32 on ``device``)
    and returns ``x0_hat`` in the caller's dtype and device. Loaded models are kept per (folder, file
    checksums, device), so repeated calls (one per measurement) cost one checksum pass.
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
