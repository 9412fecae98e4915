"""The ``bayesinv sample`` command line: sampler options reach the sampler and are recorded."""

from __future__ import annotations

import json

from bayesinv.cli import main, parse_options


def test_options_are_toml_values():
    options = parse_options(["guidance_scale=1.5", "noise_levels=[20, 0.01]", "variant='do'", "flag=true",
                             "name=plain"])
    assert options == {"guidance_scale": 1.5, "noise_levels": (20, 0.01), "variant": "do", "flag": True,
                       "name": "plain"}


def test_sample_passes_options_to_the_sampler(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["sample", "--problem", "inpaint", "--prior", "phantom-gaussian", "--sampler", "score_sde",
                 "--num-samples", "2", "--steps", "3", "--option", "cutoff=0.25", "--option", "snr=0.1",
                 "--no-progress", "--out", "run"])
    assert code == 0
    settings = json.loads((tmp_path / "run" / "posterior.safetensors.json").read_text())["settings"]
    assert settings["cutoff"] == 0.25 and settings["snr"] == 0.1 and settings["steps"] == 3


def test_sample_runs_dirac_po_and_do_on_the_shipped_network(tmp_path, monkeypatch):
    """``bayesinv sample --sampler dirac`` picks models/dirac-blur32 for phantom32 deblurring; the variant is an option."""
    monkeypatch.chdir(tmp_path)
    for variant in ("po", "do"):
        code = main(["sample", "--problem", "deblur", "--sampler", "dirac", "--num-samples", "2", "--no-progress",
                     "--option", f"variant='{variant}'", "--out", variant])
        assert code == 0
        meta = json.loads((tmp_path / variant / "posterior.safetensors.json").read_text())
        assert meta["settings"]["variant"] == variant and meta["sampler"] == "dirac"
        assert (tmp_path / variant / "posterior.png").stat().st_size > 0


TINY_DIRAC = ["network.base_channels=8", "network.channel_mults=[1]", "network.num_res_blocks=1",
              "network.attention_resolutions=[]", "training.batch_size=2", "training.max_steps=2",
              "training.prefetch=0", "training.warmup_steps=1"]


def test_train_dirac_from_the_shipped_recipe_with_overrides(tmp_path, monkeypatch):
    """``bayesinv train dirac --degradation inpaint --set training.lookahead=0.1``: the shipped recipe with the
    incremental loss, written to ./dirac-inpaint32 with the config it was trained with; models/ is untouched."""
    import tomllib

    from bayesinv.priors.hub import models_root

    shipped = (models_root() / "dirac-inpaint32" / "SHA256SUMS").read_text()
    monkeypatch.chdir(tmp_path)
    argv = ["train", "dirac", "--degradation", "inpaint", "--no-progress", "--set", "training.lookahead=0.1"]
    assert main(argv + [f"--set={item}" for item in TINY_DIRAC]) == 0
    cfg = tomllib.loads((tmp_path / "dirac-inpaint32" / "config.toml").read_text())
    assert cfg["training"]["lookahead"] == 0.1 and cfg["network"]["channel_mults"] == [1]
    assert cfg["degradation"]["kind"] == "inpaint"  # the rest is the shipped recipe
    info = json.loads((tmp_path / "dirac-inpaint32" / "train_info.json").read_text())
    assert info["steps"] == 2
    assert (models_root() / "dirac-inpaint32" / "SHA256SUMS").read_text() == shipped


def test_train_refuses_bad_overrides_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "dirac", "--degradation", "blur", "--set", "trainig.lookahead=0.1"]) == 2
    assert "no [trainig] section" in capsys.readouterr().err
    config = str(tmp_path / "missing.toml")
    assert main(["train", "prior", "--config", config, "--set", "training.max_steps=1"]) == 2
    assert "give --out" in capsys.readouterr().err
    assert not (tmp_path / "dirac-blur32").exists()
