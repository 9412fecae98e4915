"""Training the learned baselines: config checks and a one-step run whose output loads for inference."""

from __future__ import annotations

import pytest

from bayesinv.priors.hub import models_root
from bayesinv.samplers.baselines.nets import load_model
from bayesinv.training.baselines import read_config, train_from_config


def test_training_smoke_and_config_checks(tmp_path):
    cfg = read_config(models_root() / "unrolled-deblur32" / "config.toml")
    assert cfg["kind"] == "unrolled"
    with pytest.raises(ValueError, match="target 'csgm' trains kind 'vae'"):
        train_from_config(models_root() / "unrolled-deblur32" / "config.toml", out_dir=tmp_path, target="csgm")
    path = train_from_config(models_root() / "csgm-vae32" / "config.toml", out_dir=tmp_path, target="csgm",
                             max_steps=1, progress=False)
    net, loaded = load_model(tmp_path)
    assert path.name == "weights.safetensors" and loaded["kind"] == "vae" and net.latent_dim == 64
