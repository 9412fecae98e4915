r"""Small networks of the learned baselines, their configs and their checksum-verified loading.

* :class:`NeumannNetwork` (Gilton, Ongie & Willett 2019, *Neumann networks for linear inverse problems
  in imaging*, eq. 6): the truncated Neumann series of ``(A^H A + R)^{-1} A^H y`` with a learned
  nonlinear regulariser ``R`` (a small CNN) and step ``eta``:

  .. math::  \hat x = \sum_{j=0}^{B} (I - \eta A^H A - \eta R)^j (\eta A^H y),

  computed as ``b_0 = eta A^H y``, ``b_{j+1} = b_j - eta A^H A b_j - eta R(b_j)``, ``x = sum_j b_j``.
  The operator is an argument of ``forward`` (not a parameter), so the network follows the problem's ``A``.
* :class:`VAE`: a convolutional variational autoencoder (Kingma & Welling 2014) whose decoder ``G(z)``
  is the generator of CSGM (Bora et al. 2017).

Weights ship as ``models/<name>/{config.toml, weights.safetensors, SHA256SUMS, MODEL_CARD.md}``;
:func:`load_model` verifies the SHA-256 of the weights and the config before reading them with
safetensors (never pickle). ``$BAYESINV_MODELS`` overrides the models folder.
"""

from __future__ import annotations

import math
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesinv.errors import ShapeError
from bayesinv.priors.hub import resolve_model, verify_checksums
from bayesinv.operators.registry import make_operator
from bayesinv.priors.networks.weights import CHECKSUMS_NAME, WEIGHTS_NAME, load_weights

__all__ = ["ConvRegulariser", "NeumannNetwork", "VAE", "build_network", "training_operator", "load_model",
           "load_for_operator", "WEIGHTS_NAME", "CHECKSUMS_NAME"]


class ConvRegulariser(nn.Module):
    """``R``: ``depth`` 3x3 convolutions of ``width`` channels with ReLUs, ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            last = i == depth - 1
            layers.append(nn.Conv2d(channels if i == 0 else width, channels if last else width, 3, padding=1))
            if not last:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class NeumannNetwork(nn.Module):
    """Neumann network with ``blocks`` terms and a shared CNN regulariser (see module docstring)."""

    def __init__(self, channels: int = 1, blocks: int = 6, width: int = 32, depth: int = 4, step: float = 1.0):
        super().__init__()
        self.blocks = int(blocks)
        self.regulariser = ConvRegulariser(channels, width, depth)
        self.log_step = nn.Parameter(torch.tensor(math.log(step)))

    def forward(self, y: torch.Tensor, operator) -> torch.Tensor:
        """``y: (B, *out_shape)`` and a real-input linear operator -> ``x: (B, C, H, W)``."""
        eta = self.log_step.exp()
        term = eta * operator.adjoint(y)
        total = term
        for _ in range(self.blocks):
            term = term - eta * (operator.normal(term) + self.regulariser(term))
            total = total + term
        return total


class VAE(nn.Module):
    """Convolutional VAE for ``(B, 1, S, S)`` images in ``[0, 1]`` (``S`` divisible by 8), latent ``N(0, I)``."""

    def __init__(self, image_size: int = 32, latent_dim: int = 64, width: int = 32, channels: int = 1):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"VAE image_size must be divisible by 8, got {image_size}")
        self.latent_dim, self.side, self.width = int(latent_dim), image_size // 8, int(width)
        w = self.width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.SiLU(), nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.SiLU(), nn.Flatten(),
            nn.Linear(4 * w * self.side**2, 2 * self.latent_dim))
        self.project = nn.Linear(self.latent_dim, 4 * w * self.side**2)
        self.decoder = nn.Sequential(
            nn.SiLU(), nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.SiLU(), nn.ConvTranspose2d(w, w, 4, 2, 1), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log variance)`` of ``q(z | x)``, each ``(B, latent_dim)``."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 6)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)``: ``(B, latent_dim) -> (B, 1, S, S)`` in ``(0, 1)``."""
        h = self.project(z).reshape(z.shape[0], 4 * self.width, self.side, self.side)
        return torch.sigmoid(self.decoder(h))

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype).to(mean.device)
        return self.decode(mean + (0.5 * logvar).exp() * eps), mean, logvar


def build_network(cfg: dict[str, Any]) -> nn.Module:
    """The network of a config: ``kind = "unrolled"`` (Neumann network) or ``"vae"``, options in ``[network]``."""
    kind = cfg.get("kind")
    options = dict(cfg.get("network", {}))
    if kind == "unrolled":
        return NeumannNetwork(**options)
    if kind == "vae":
        return VAE(image_size=int(cfg["data"]["image_size"]), **options)
    raise ValueError(f"config kind must be 'unrolled' or 'vae', got {kind!r}")


def training_operator(cfg: dict[str, Any]):
    """The operator an unrolled network is trained for: ``make_operator(name, (C, S, S), seed, **options)``."""
    op_cfg = cfg["operator"]
    size = int(cfg["data"]["image_size"])
    return make_operator(op_cfg["name"], (1, size, size), seed=int(op_cfg.get("seed", 0)),
                         **dict(op_cfg.get("options", {})))


def _resolve(name_or_path: str | os.PathLike) -> Path:
    return resolve_model(name_or_path)  # a name: models root only, never the working directory


@lru_cache(maxsize=8)
def _load_cached(folder: str, digest: str) -> tuple[nn.Module, dict[str, Any]]:
    path = Path(folder)
    with open(path / "config.toml", "rb") as handle:
        cfg = tomllib.load(handle)
    net = build_network(cfg)
    load_weights(net, path / WEIGHTS_NAME)
    return net.eval().requires_grad_(False), cfg


def load_model(name_or_path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Load ``models/<name>`` (or a folder): verify checksums, build the network, read the safetensors weights.

    Returns ``(network in eval mode without gradients, config dict)``. The checksums are verified on every
    call; the built network is cached per folder and ``SHA256SUMS`` content.
    """
    folder = _resolve(name_or_path)
    verify_checksums(folder, required=(WEIGHTS_NAME, "config.toml"))
    return _load_cached(str(folder.resolve()), (folder / CHECKSUMS_NAME).read_text())


_ON_DEVICE: dict[tuple[int, str], nn.Module] = {}  # (id of the cached CPU network, device) -> its copy there


def load_for_operator(who: str, name: str, kind: str, in_shape,
                      device: torch.device | str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_model`, checking that the model is of ``kind`` and works on images of ``in_shape``; with a
    ``device`` other than the network's, a copy on that device (kept, so each device loads once)."""
    net, cfg = load_model(name)
    if device is not None and torch.device(device) != next(net.parameters()).device:
        key = (id(net), str(torch.device(device)))
        if key not in _ON_DEVICE:
            import copy

            _ON_DEVICE[key] = copy.deepcopy(net).to(device)
        net = _ON_DEVICE[key]
    if cfg.get("kind") != kind:
        raise ValueError(f"{who}: model {name!r} is a {cfg.get('kind')!r} model, not {kind!r}")
    size = int(cfg["data"]["image_size"])
    if tuple(in_shape) != (1, size, size):
        raise ShapeError(f"{who}: model {name!r} works on (1, {size}, {size}) images, the operator's in_shape "
                         f"is {tuple(in_shape)}")
    return net, cfg
