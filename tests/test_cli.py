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
