"""`bayesinv calibrate | audit | report` on a tiny study built from its TOML (operator from the registry)."""

import json

import pytest

from bayesinv.cli import main
from tests.studies.helpers import tiny_study_toml

TOML = tiny_study_toml(4, 8)


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


SLOW_TOML = TOML.replace("""[samplers.exact]
sampler = "exact"
num_samples = 8""", """[samplers.dps]
sampler = "dps"
num_samples = 6
steps = 200
[samplers.dps.options]
batch_size = 1""")


def test_sigint_mid_study_keeps_only_finished_results_and_the_next_run_resumes(tmp_path):
    """Ctrl-C (SIGINT) while a chunked sampler is half-way through a case: exit 130, nothing partial on disk,
    no .tmp files, the lock released; the next run finishes and equals an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch
    from safetensors.torch import load_file

    from bayesinv.studies import load_study, run_study
    from bayesinv.studies.runner import is_done, result_path, study_tasks

    (tmp_path / "study.toml").write_text(SLOW_TOML)
    spec = load_study(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    # a child started from a background job inherits SIGINT ignored (and Python keeps ignoring it): the child
    # restores Python's own handler itself (no preexec_fn: forking a process that has JAX loaded warns)
    start = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from bayesinv.cli import main; sys.exit(main(sys.argv[1:]))")
    command = [sys.executable, "-c", start, "calibrate", str(tmp_path), "--no-progress"]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as run:
        first = result_path(tmp_path / "results", "dps", "calibration", 0)
        deadline = time.monotonic() + 120
        while not first.exists() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # into the next case's chunks
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    results = tmp_path / "results"
    on_disk = [t for t in study_tasks(spec) if result_path(results, *t).exists()]
    assert on_disk and len(on_disk) < len(study_tasks(spec))
    assert all(is_done(results, *t, spec=spec) for t in on_disk)  # everything saved is complete
    assert not list(results.rglob("*.tmp")) and not (results / ".lock").read_text()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command line ran (OMP_NUM_THREADS=1 below): same reductions, same bits
    try:
        run_study(spec, progress=False)
        fresh = run_study(spec, tmp_path / "fresh", progress=False)
    finally:
        torch.set_num_threads(threads)
    for task in study_tasks(spec):
        a = load_file(str(result_path(results, *task)))["samples"]
        assert torch.equal(a, load_file(str(result_path(fresh, *task)))["samples"]), task
