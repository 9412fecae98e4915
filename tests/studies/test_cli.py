"""`bayesinv calibrate | audit | report` on a tiny study built from its TOML (operator from the registry)."""

import json

import pytest

from bayesinv.cli import main

TOML = """
name = "cli-tiny"
seed = 2
[problem]
operator = "denoise"
image_size = 8
noise_sigma = 0.1
[prior]
name = "phantom-gaussian"
[data]
family = "prior"
num_calibration = 4
num_test = 4
[samplers.exact]
sampler = "exact"
num_samples = 8
[diagnostics]
audit = false
"""


@pytest.mark.slow
def test_calibrate_audit_and_report_commands(tmp_path, capsys):
    (tmp_path / "study.toml").write_text(TOML)
    assert main(["calibrate", str(tmp_path), "--no-progress"]) == 0
    assert f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["hallucination"] is None  # audit = false in the spec
    assert main(["audit", str(tmp_path / "study.toml"), "--no-progress"]) == 0  # resumes: no new samples
    assert json.loads((tmp_path / "report.json").read_text())["hallucination"]["exact"]["chi2"]["num_tests"] == 32
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path)]) == 2
    assert "bayesinv calibrate: error: study spec not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no analysis in" in capsys.readouterr().err
