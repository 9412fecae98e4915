r"""Training Dirac networks (Fabian, Tinaz & Soltanolkotabi 2024).

The network ``Phi(y_t, t) = y_t + UNet(y_t, time_scale * t)`` (:class:`~bayesinv.samplers.dirac_model.DiracNetwork`)
is trained on the degradation process ``y_t = A_t(x0) + sigma_t z`` (:mod:`bayesinv.operators.degradation`) with the
incremental reconstruction loss of the paper (eq. 9), ``t ~ U(0, 1)``, ``tau = max(t - lookahead, 0)``:

    L(lookahead) = E_{x0, t, z} w(t) || A_tau(Phi(y_t, t)) - A_tau(x0) ||^2,   w(t) = sigma_1^2 / sigma_t^2

(the reference's ``1 / sigma_t^2`` weight, normalised to 1 at ``t = 1``). ``lookahead = 1`` is the plain
``x0`` loss (``tau = 0``, ``A_0 = I``): the setting of the authors' deblurring trainer
(``weighted_mse_x_loss``); ``lookahead = 0`` is their ``weighted_mse_loss``. The loss is averaged over pixels.

Data: fresh train-split phantoms every step (``phantom_dataset("train", batch, size, seed=seed + step,
lesion_prob=0.5)``, :func:`bayesinv.training.run.phantom_batches`); the loop (AdamW, EMA, safetensors
checkpoints, resumption, loss log) is :func:`bayesinv.training.loop.train_loop`.

``train_from_config`` reads ``models/dirac-*/config.toml`` and writes ``weights.safetensors`` (EMA),
``loss.csv``, ``train_info.json`` and ``SHA256SUMS`` into its folder; :func:`~bayesinv.samplers.dirac_model.load_dirac`
reads a model folder back after verifying the checksums (never unpickling).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bayesinv.operators.degradation import Degradation, GeometricNoise
from bayesinv.priors.networks.unet import count_parameters
from bayesinv.samplers.dirac_model import build_model_parts, read_config
from bayesinv.training.run import config_batches, finish_run, mean_tail, output_folder, train_from_table

__all__ = ["dirac_loss", "read_config", "train_from_config"]


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


def train_from_config(config: str | Path | dict, out_dir: str | Path | None = None, device: str = "cpu",
                      resume: bool = True, target: str = "dirac", *, max_steps: int | None = None,
                      max_minutes: float | None = None, progress: bool = True) -> Path:
    """Train the Dirac network a config describes; return the path of ``weights.safetensors``.

    This is what ``bayesinv train dirac --config models/dirac-blur32/config.toml --device cuda`` calls;
    ``max_steps``/``max_minutes`` override ``[training]`` (short smoke runs).
    """
    if target != "dirac":
        raise ValueError(f"bayesinv.training.dirac trains target 'dirac', got {target!r}")
    cfg = read_config(config)
    out = output_folder(config, out_dir, cfg)
    train = cfg["training"]
    with torch.random.fork_rng(devices=[]):  # the initial weights are a function of the seed; global state untouched
        torch.manual_seed(int(train.get("seed", 0)))
        network, degradation, noise = build_model_parts(cfg)
    lookahead = float(train.get("lookahead", 1.0))
    if not 0.0 <= lookahead <= 1.0:
        raise ValueError(f"[training] lookahead must lie in [0, 1], got {lookahead}")

    def loss_fn(model, x0, generator):
        return dirac_loss(model, x0, generator, degradation=degradation, noise=noise, lookahead=lookahead)

    result = train_from_table(network, loss_fn, config_batches(cfg), train, device=device,
                              checkpoint_dir=out / "checkpoints", resume=resume, max_steps=max_steps,
                              max_minutes=max_minutes, progress=progress)
    info = {"parameters": count_parameters(network), "batch_size": int(train["batch_size"]), "lookahead": lookahead,
            "final_loss_mean_last_500": mean_tail(result.losses, 500)}
    return finish_run(out, result.ema, result, cfg, device=device, info=info)
