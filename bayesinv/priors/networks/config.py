"""A diffusion prior's ``config.toml``: its ``[schedule]`` and ``[network]`` tables turned into objects.

Used both to load a committed prior (:func:`bayesinv.priors.hub.build_prior`) and to train one
(:mod:`bayesinv.training.prior`), so the two always build the same network from the same config.

>>> cfg = {"data": {"image_size": 8}, "schedule": {"name": "vp_linear", "num_steps": 10},
...        "network": {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
...                    "attention_resolutions": []}, "training": {}}
>>> build_schedule(read_config(cfg)).num_steps, type(build_network(cfg)).__name__
(10, 'UNet')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bayesinv.priors.networks.unet import UNet
from bayesinv.priors.networks.weights import read_toml_config
from bayesinv.priors.schedules import Schedule, make_schedule

__all__ = ["read_config", "build_network", "build_schedule"]


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
