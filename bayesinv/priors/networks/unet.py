"""A compact U-Net for small images (Ho et al. 2020, Dhariwal & Nichol 2021), conditioned on a scalar time.

Layout: a 3x3 input convolution; at each resolution ``num_res_blocks`` residual blocks (GroupNorm -> SiLU ->
conv, time embedding added as a per-channel shift, dropout, GroupNorm -> SiLU -> conv) with optional
self-attention, then a stride-2 downsampling; a middle of ResBlock-attention-ResBlock; a mirrored decoder
with skip connections (one skip per encoder block) and nearest-neighbour upsampling; GroupNorm -> SiLU ->
3x3 output convolution initialised to zero (the network starts as the zero function).

The time input ``t`` (``(B,)`` floats, e.g. the DDPM timestep) is embedded with sinusoids
``[cos(t w_k), sin(t w_k)]``, ``w_k = 10000^{-k/(d/2)}`` (Vaswani et al. 2017; DDPM) followed by a two-layer
MLP. ``t=None`` (networks without time, e.g. unrolled or Dirac-type reconstruction nets) uses ``t = 0``.

Shapes: ``UNet(x: (B, in_channels, H, W), t: (B,) | float | None) -> (B, out_channels, H, W)``; ``H`` and ``W``
must be divisible by ``2^(len(channel_mults) - 1)``.

>>> net = UNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(16,), image_size=16)
>>> net(torch.zeros(2, 1, 16, 16), torch.tensor([0.0, 5.0])).shape
torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet", "UNetConfig", "timestep_embedding", "count_parameters", "inference_layout"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B,) -> (B, dim)``: ``[cos(t w_k), sin(t w_k)]`` with ``w_k = max_period^{-k/half}``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def inference_layout(module: nn.Module) -> nn.Module:
    """Store the 4-d (convolution) weights channels-last when they live on the CPU, in place; return ``module``.

    oneDNN's CPU convolutions then run in NHWC, ~10-20% faster for the phantom U-Nets at batch 1-16 (forward and
    forward + VJP; ``python benchmarks/prior_timing.py models/phantom32/config.toml`` prints both layouts side by
    side). The values are unchanged (``save_weights`` writes the same bytes); outputs move by float32 rounding.
    Elsewhere (CUDA) the contiguous layout is restored, since its speed there depends on precision and kernels.
    """
    params = list(module.parameters())
    on_cpu = bool(params) and params[0].device.type == "cpu"
    return module.to(memory_format=torch.channels_last if on_cpu else torch.contiguous_format)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """``x + conv(drop(act(norm(conv(act(norm(x))) + emb))))`` with a 1x1 skip when channels change."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the ``H*W`` positions, pre-norm, residual."""

    def __init__(self, channels: int, groups: int, heads: int = 4):
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


@dataclass
class UNetConfig:
    """Architecture hyper-parameters (stored in ``config.toml`` under ``[network]``)."""

    in_channels: int = 1
    out_channels: int = 1
    base_channels: int = 32
    channel_mults: Sequence[int] = field(default_factory=lambda: (1, 2, 2))
    num_res_blocks: int = 2
    attention_resolutions: Sequence[int] = field(default_factory=lambda: (8,))
    dropout: float = 0.0
    image_size: int = 32
    num_groups: int = 8

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(d["channel_mults"])
        d["attention_resolutions"] = list(d["attention_resolutions"])
        return d


class UNet(nn.Module):
    """The U-Net of the module docstring; keyword arguments are the fields of :class:`UNetConfig`."""

    def __init__(self, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - set(UNetConfig.__dataclass_fields__))
        if unknown:
            raise TypeError(f"UNet got unknown argument(s) {unknown}; known: {sorted(UNetConfig.__dataclass_fields__)}")
        cfg = self.config = UNetConfig(**kwargs)
        if cfg.image_size % 2 ** (len(cfg.channel_mults) - 1):
            raise ValueError(f"image_size must be divisible by 2^(len(channel_mults)-1) = "
                             f"{2 ** (len(cfg.channel_mults) - 1)}, got {cfg.image_size}")
        ch, groups, emb_dim = cfg.base_channels, cfg.num_groups, 4 * cfg.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down, skips, res, cur = nn.ModuleList(), [ch], cfg.image_size, ch
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(self._block(cur, ch * mult, res, emb_dim))
                cur = ch * mult
                skips.append(cur)
            if level < len(cfg.channel_mults) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb_dim, cfg.dropout, groups), Attention(cur, groups),
                                  ResBlock(cur, cur, emb_dim, cfg.dropout, groups)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(self._block(cur + skips.pop(), ch * mult, res, emb_dim))
                cur = ch * mult
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                res *= 2
        self.out_norm = _norm(cur, groups)
        self.out = nn.Conv2d(cur, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _block(self, in_ch: int, out_ch: int, res: int, emb_dim: int) -> nn.ModuleList:
        layers = [ResBlock(in_ch, out_ch, emb_dim, self.config.dropout, self.config.num_groups)]
        if res in self.config.attention_resolutions:
            layers.append(Attention(out_ch, self.config.num_groups))
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"x must have shape (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        t = torch.zeros((), device=x.device) if t is None else torch.as_tensor(t, device=x.device)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x.dtype))  # a .double() net works
        h = self.inp(x)
        hs = [h]
        for layer in self.down:
            h = self._run_block(layer, h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for layer in self.up:
            if isinstance(layer, nn.Upsample):
                h = layer(h)
            else:
                h = self._run_block(layer, torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))

    @staticmethod
    def _run_block(layer: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, nn.ModuleList):
            h = layer[0](h, emb)
            for extra in layer[1:]:
                h = extra(h)
            return h
        return layer(h)


def count_parameters(module: nn.Module) -> int:
    """The number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
