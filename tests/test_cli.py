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
