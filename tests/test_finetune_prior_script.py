"""benchmarks/finetune_prior.py: a run stopped by --max-minutes and resumed trains exactly as an uninterrupted one.

This is the path of benchmarks/prior_fix_device.sh (the device run of issue 16's prior fix) on the CPU; the loss
itself is the library's diffusion loss with timestep and lesion weights (its training is tested in
tests/training)."""

import argparse
import csv
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("finetune_prior", ROOT / "benchmarks" / "finetune_prior.py")
finetune_prior = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(finetune_prior)


def _run(monkeypatch, capsys, out: Path, *extra: str) -> str:
    argv = ["finetune_prior.py", "--out", str(out), "--batch", "2", "--steps", "3", "--snapshot-every", "3",
            "--warmup", "1", "--lesion-weight", "2", "--per-lesion", "--low-max", "50", *extra]
    monkeypatch.setattr(sys, "argv", argv)
    finetune_prior.main()
    return capsys.readouterr().out


def _losses(out: Path) -> list[float]:
    with open(out / "loss.csv") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def test_max_minutes_stops_with_a_snapshot_and_a_rerun_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch,
                                                                                          capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _run(monkeypatch, capsys, whole)
    said = _run(monkeypatch, capsys, cut, "--max-minutes", "0")
    assert "stopped by --max-minutes 0.0 at step 1 of 3" in said
    assert sorted(p.name for p in cut.glob("ema_step*")) == ["ema_step1.safetensors"]
    _run(monkeypatch, capsys, cut)  # the same command without the limit resumes from step 1
    assert len(_losses(whole)) == 3
    assert _losses(cut) == _losses(whole)
    for name in ("ema_step3.safetensors", "raw_step3.safetensors"):
        a, b = load_file(str(whole / name)), load_file(str(cut / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_unknown_device_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="device 'gpu' is not a torch device"):
        _run(monkeypatch, capsys, tmp_path / "x", "--device", "gpu")
    assert not (tmp_path / "x").exists()


def _options(parser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands."""
    found = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= set(sub._option_string_actions)
    return found


def test_the_device_script_is_valid_bash_and_passes_only_options_the_scripts_know():
    script = ROOT / "benchmarks" / "prior_fix_device.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    spec = importlib.util.spec_from_file_location("prior_lesions", ROOT / "benchmarks" / "prior_lesions.py")
    prior_lesions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prior_lesions)
    known = {"finetune": _options(finetune_prior.build_parser()), "lesions": _options(prior_lesions.build_parser())}
    lines = [line for line in script.read_text().replace("\\\n", " ").splitlines() if not line.startswith("#")]
    used = {"finetune": set(), "lesions": set()}
    for line in lines:
        target = "finetune" if ("finetune_prior.py" in line or line.startswith("train=(")) else \
            "lesions" if "prior_lesions.py" in line else None
        if target:
            used[target] |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    assert len(used["finetune"]) >= 10 and len(used["lesions"]) >= 8  # the parsing found the commands
    for target in used:
        assert used[target] <= known[target], (target, used[target] - known[target])
