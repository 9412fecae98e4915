"""Dirac training: the loss against its definition, determinism and resumption, safe loading, shipped configs."""

import shutil
import tomllib
from pathlib import Path

import pytest
import torch

from bayesinv.data.phantoms import phantom_dataset
from bayesinv.errors import ChecksumMismatch, WeightsError
from bayesinv.operators.degradation import BlurDegradation, GeometricNoise, InpaintDegradation, blur_severity_schedule
from bayesinv.operators.inpaint import random_mask
from bayesinv.operators.registry import make_operator
from bayesinv.priors.hub import models_root
from bayesinv.samplers.dirac_model import DiracNetwork, build_model_parts, load_dirac
from bayesinv.training.dirac import dirac_loss, train_from_config

NOISE = GeometricNoise(0.01, 0.05)
SHAPE = (1, 8, 8)


def _tiny_config(kind="inpaint", lookahead=0.5):
    degradation = ({"kind": "blur", "std": 1.0, "size": 3} if kind == "blur" else
                   {"kind": "inpaint", "mask": "random", "fraction_missing": 0.5, "mask_seed": 0, "order": "random"})
    return {"name": "tiny", "data": {"image_size": 8, "lesion_prob": 0.5, "seed": 0}, "degradation": degradation,
            "noise": {"sigma_min": 0.01, "sigma_max": 0.05},
            "network": {"base_channels": 8, "channel_mults": [1], "num_res_blocks": 1, "attention_resolutions": [],
                        "num_groups": 4},
            "training": {"lookahead": lookahead, "batch_size": 4, "lr": 1e-3, "ema_decay": 0.9, "max_steps": 4,
                         "seed": 3, "checkpoint_every": 2, "prefetch": 0}}


class _Affine(torch.nn.Module):
    """``Phi(y, t) = a y + b t``: simple enough to write the loss by hand."""

    def forward(self, y_t, t):
        return 0.8 * y_t + 0.1 * t.reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("degradation", [BlurDegradation(SHAPE, 1.0, size=3),
                                         InpaintDegradation(SHAPE, random_mask((8, 8), 0.5, torch.Generator()))],
                         ids=["blur", "inpaint"])
@pytest.mark.parametrize("lookahead", [0.0, 0.3, 1.0])
def test_loss_is_the_weighted_incremental_reconstruction_error(degradation, lookahead):
    x0 = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = dirac_loss(_Affine(), x0, torch.Generator().manual_seed(4), degradation=degradation, noise=NOISE,
                      lookahead=lookahead)
    g = torch.Generator().manual_seed(4)  # the same draws, in the same order
    t = torch.rand(5, generator=g, dtype=torch.float64)
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    expected = 0.0
    for i in range(5):
        ti = float(t[i])
        y_t = degradation.operator_at(ti)(x0[i : i + 1]) + NOISE.std(ti) * z[i : i + 1]
        x_hat = 0.8 * y_t + 0.1 * ti
        a_tau = degradation.operator_at(max(ti - lookahead, 0.0))
        expected += (NOISE.sigma_max / NOISE.std(ti)) ** 2 * ((a_tau(x_hat) - a_tau(x0[i : i + 1])) ** 2).sum()
    torch.testing.assert_close(loss, expected / x0.numel(), rtol=1e-10, atol=0)
    if lookahead == 1.0:  # tau = 0: the plain x0 loss
        assert degradation.apply(x0, 0.0).equal(x0)


def test_network_is_residual_and_starts_as_the_identity():
    network, _, _ = build_model_parts(_tiny_config())
    assert isinstance(network, DiracNetwork)
    y = torch.rand(2, *SHAPE)
    assert torch.equal(network(y, torch.tensor([0.2, 0.9])), y)  # the U-Net's last conv is zero-initialised


def _train(tmp: Path, cfg, **kw):
    return train_from_config(cfg, out_dir=tmp, progress=False, **kw)


@pytest.mark.slow
def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    cfg = _tiny_config()
    a = load_dirac(_train(tmp_path / "a", cfg).parent)
    b = load_dirac(_train(tmp_path / "b", cfg).parent)
    _train(tmp_path / "c", cfg, max_steps=2)
    c = load_dirac(_train(tmp_path / "c", cfg).parent)  # resumes from the step-2 checkpoint
    y = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.1, 0.5, 1.0])
    out = [m.denoiser(y, t) for m in (a, b, c)]
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert not torch.equal(out[0], y)  # it did train
    cfg_other = _tiny_config()
    cfg_other["training"]["seed"] = 4
    d = load_dirac(_train(tmp_path / "d", cfg_other).parent)
    assert not torch.equal(d.denoiser(y, t), out[0])
    losses = (tmp_path / "c" / "loss.csv").read_text().splitlines()
    assert losses[0] == "step,loss" and len(losses) == 5


def test_loading_verifies_checksums(tmp_path):
    folder = _train(tmp_path / "m", _tiny_config("blur", 1.0), max_steps=1).parent
    assert load_dirac(folder).degradation.kind == "blur"
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    with open(bad / "weights.safetensors", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(ChecksumMismatch, match="weights.safetensors"):
        load_dirac(bad)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(WeightsError, match="has no SHA256SUMS"):
        load_dirac(folder)
    with pytest.raises(WeightsError, match="no Dirac model 'nope'"):
        load_dirac("nope")


def test_bad_configs_raise_clear_errors(tmp_path):
    cfg = _tiny_config()
    cfg["training"]["lookahead"] = 1.5
    with pytest.raises(ValueError, match=r"lookahead must lie in \[0, 1\]"):
        _train(tmp_path, cfg)
    with pytest.raises(ValueError, match="missing section"):
        train_from_config({"data": {}}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="trains target 'dirac'"):
        train_from_config(_tiny_config(), out_dir=tmp_path, target="prior")


@pytest.mark.parametrize("name,problem,options", [("dirac-blur32", "deblur", {}), ("dirac-inpaint32", "inpaint", {})])
def test_shipped_models_match_the_registry_operators(name, problem, options):
    """The shipped networks' A_1 is what ``make_operator`` builds for the CLI and studies (seed 0)."""
    model = load_dirac(name)
    model.degradation.check_target(make_operator(problem, (1, 32, 32), **options))
    assert model.noise == GeometricNoise(0.01, 0.05)
    info = (models_root() / name / "train_info.json").read_text()
    assert '"lookahead": 1.0' in info


@pytest.mark.slow
def test_shipped_blur_schedule_is_the_severity_linear_table():
    with open(models_root() / "dirac-blur32" / "config.toml", "rb") as handle:
        cfg = tomllib.load(handle)["degradation"]
    images = phantom_dataset("train", 512, 32, seed=0).images.double()
    knots = blur_severity_schedule(images, cfg["std"], size=cfg["size"], num_knots=len(cfg["knots"]))
    torch.testing.assert_close(torch.tensor(cfg["knots"]), torch.tensor(knots), rtol=0, atol=1e-4)
