"""Study integrity: results carry the hash of what produced them; a rerun after a spec edit gives exactly what
a fresh run gives; broken, partial, stale and interrupted files never count as done; one run per folder."""

import logging
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from bayesinv.studies import analyze_study, case_path, result_path, run_study
from bayesinv.studies import runner, store
from bayesinv.studies.lock import StudyLocked, study_lock
from bayesinv.studies.runner import study_tasks

from .conftest import tiny_spec


def _dps_spec(folder, sigma=0.1, num_samples=3, steps=4, options=None):
    spec = tiny_spec(folder, samplers={"dps": {"sampler": "dps", "num_samples": num_samples, "steps": steps,
                                               "options": options or {}}}, num_calibration=2, num_test=2)
    return type(spec)(**{**spec.__dict__, "noise_sigma": sigma})


def _everything(results, spec):
    """Every case tensor and every sample tensor of a results folder."""
    out = {}
    for split in runner.splits(spec):
        for i in range(runner.split_size(spec, split)):
            out.update({(split, i, k): v for k, v in load_file(str(case_path(results, split, i))).items()})
    out.update({t: load_file(str(result_path(results, *t)))["samples"] for t in study_tasks(spec)})
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("edit", [{"sigma": 0.2}, {"num_samples": 2}, {"steps": 3},
                                  {"options": {"guidance_scale": 0.5}}])
def test_rerun_after_a_spec_edit_equals_a_fresh_run(tmp_path, edit):
    first = _dps_spec(tmp_path / "study")
    results = run_study(first, progress=False)
    edited = _dps_spec(tmp_path / "study", **edit)
    redone = []
    run_study(edited, progress=False, on_task=lambda *a: redone.append(a[:3]))
    assert sorted(redone) == sorted(study_tasks(edited))  # every result depended on the edited entry
    fresh = run_study(edited, tmp_path / "fresh", progress=False)
    _assert_same(_everything(results, edited), _everything(fresh, edited))
    again = []
    run_study(edited, progress=False, on_task=lambda *a: again.append(a))
    assert again == []  # and now everything verifies


def test_truncated_partial_and_foreign_files_are_named_and_redone(tmp_path, tiny_problem, caplog):
    spec = tiny_spec(tmp_path)
    fresh = run_study(spec, tmp_path / "fresh", problem=tiny_problem, progress=False)
    results = run_study(spec, problem=tiny_problem, progress=False)
    truncated = result_path(results, "exact", "test", 1)
    truncated.write_bytes(truncated.read_bytes()[:100])
    case = case_path(results, "calibration", 2)
    case.write_bytes(case.read_bytes()[:-7])
    (results / "over" / "test-0000.safetensors.tmp").write_bytes(b"half")  # left by a killed run
    # a result with the right hash but 3 of 10 chains (the JSON says the same): incomplete
    partial = result_path(results, "over", "test", 3)
    data = load_file(str(partial))
    meta = store._header(partial)[0]
    store.atomic_save_tensors({"samples": data["samples"][:3]}, partial, meta)
    redone = []
    with caplog.at_level(logging.WARNING, logger="bayesinv.studies"):
        run_study(spec, problem=tiny_problem, progress=False, on_task=lambda *a: redone.append(a[:3]))
    log = caplog.text
    assert str(truncated) in log and "unreadable" in log
    assert str(case) in log and str(partial) in log
    # the truncated case is drawn again, identical to the lost one (same hash), so its results still verify
    assert sorted(redone) == [("exact", "test", 1), ("over", "test", 3)]
    assert not list(results.rglob("*.tmp"))
    _assert_same(_everything(results, spec), _everything(fresh, spec))


def test_files_without_or_with_another_provenance_are_stale(tmp_path, tiny_problem):
    spec = tiny_spec(tmp_path)
    results = run_study(spec, problem=tiny_problem, progress=False)
    path = result_path(results, "exact", "test", 0)
    samples = load_file(str(path))["samples"]
    store.atomic_save_tensors({"samples": samples}, path)  # as an older bayesinv wrote it: no provenance
    assert "without provenance" in runner.result_problem(results, spec, "exact", "test", 0, tiny_problem)
    with pytest.raises(store.StaleResultsError, match=r"1 file\(s\) .* do not match the spec .*test-0000"):
        run_study(spec, problem=tiny_problem, progress=False, recompute=False)
    run_study(spec, problem=tiny_problem, progress=False)
    assert runner.result_problem(results, spec, "exact", "test", 0, tiny_problem) is None
    # the same folder analysed under another spec uses none of these results
    other = type(spec)(**{**spec.__dict__, "seed": 4})
    with pytest.raises(FileNotFoundError, match="do not match the spec .*stale"):
        analyze_study(other, results, problem=tiny_problem, progress=False)


def _chunked_sampler(interrupt_at):
    """A stand-in for ``run_sampler`` that draws one chain per chunk through the samplers' own chunk loop and
    gets Ctrl-C during chunk ``interrupt_at``."""
    from bayesinv.posterior import Posterior
    from bayesinv.samplers._driver import draw_in_chunks

    def fake(name, problem, y, *, num_samples, steps, generator, options, progress=False):
        def draw(start, n):
            if start == interrupt_at:
                raise KeyboardInterrupt
            return torch.randn(n, 1, 1, 8, 8, generator=generator, dtype=torch.float64), {}

        samples, _ = draw_in_chunks(num_samples, 1, draw)
        return Posterior(samples, sampler=name)

    return fake


def test_ctrl_c_in_a_chunked_sampler_saves_nothing_and_the_next_run_resumes(tmp_path, tiny_problem, monkeypatch):
    spec = tiny_spec(tmp_path, samplers={"chunked": {"sampler": "exact", "num_samples": 8}})
    monkeypatch.setattr(runner, "run_sampler", _chunked_sampler(interrupt_at=8))
    fresh = run_study(spec, tmp_path / "fresh", problem=tiny_problem, progress=False)
    monkeypatch.setattr(runner, "run_sampler", _chunked_sampler(interrupt_at=3))  # 3 of 8 chains, then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, problem=tiny_problem, progress=False)
    results = tmp_path / "results"
    assert not result_path(results, "chunked", "calibration", 0).exists()
    assert not list(results.rglob("*.tmp"))
    assert not (results / ".lock").read_text()  # released
    monkeypatch.setattr(runner, "run_sampler", _chunked_sampler(interrupt_at=8))
    run_study(spec, problem=tiny_problem, progress=False)
    _assert_same(_everything(results, spec), _everything(fresh, spec))


HOLD = """
import sys, time
from bayesinv.studies.lock import study_lock
with study_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_names_the_process_that_holds_the_folder(tmp_path, tiny_problem):
    spec = tiny_spec(tmp_path)
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen([sys.executable, "-c", HOLD, str(results)], stdout=subprocess.PIPE, text=True,
                          env=env) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(StudyLocked, match=rf"in use by process {holder.pid} "):
                run_study(spec, problem=tiny_problem, progress=False)
        finally:
            holder.kill()
    assert not result_path(results, "exact", "test", 0).exists()
    # the holder died without cleaning up: its pid is still in the lock file, and the lock is taken over
    assert (results / ".lock").read_text().split()[0] == str(holder.pid)
    run_study(spec, problem=tiny_problem, progress=False)
    assert runner.is_done(results, "exact", "test", 0, spec=spec, problem=tiny_problem)


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
    with study_lock(tmp_path) as path:
        with study_lock(tmp_path):
            assert path.read_text().split()[0] == str(os.getpid())
        assert path.read_text()  # still held by the outer block
    assert path.read_text() == ""
    start = time.perf_counter()
    with study_lock(tmp_path):
        pass
    assert time.perf_counter() - start < 5


def test_a_full_disk_names_the_file_and_leaves_no_tmp(tmp_path, monkeypatch):
    import errno

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save_file", full)
    target = tmp_path / "x.safetensors"
    with pytest.raises(OSError, match=rf"cannot write {target}: No space left on device"):
        store.atomic_save_tensors({"a": torch.zeros(2)}, target)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_inside_real_dps_chunks_saves_nothing(tmp_path):
    """DPS with ``batch_size = 1``: Ctrl-C during the third chain's steps propagates out of the sampler driver
    (finished chains are not returned as a result) and the study saves nothing for that task."""
    calls = []

    def interrupt(step, x_t, x0_hat):
        calls.append(step)
        if len(calls) == 2 * 5 + 2:  # chains 1 and 2 finished (5 steps each), chain 3 under way
            raise KeyboardInterrupt

    spec = _dps_spec(tmp_path, num_samples=4, steps=5, options={"batch_size": 1, "callback": interrupt})
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, progress=False)
    results = tmp_path / "results"
    assert not (results / "dps").exists() or not any((results / "dps").iterdir())
    assert not list(results.rglob("*.tmp"))


def test_a_sample_count_that_cannot_fit_is_refused_before_any_work(tmp_path, tiny_problem):
    from bayesinv.studies import StudySpecError

    spec = tiny_spec(tmp_path, samplers={"huge": {"sampler": "exact", "num_samples": 10**12}})
    with pytest.raises(StudySpecError, match=r"'samplers\.huge\.num_samples' = 1000000000000 needs at least "
                                             r"[\d.]+ GiB .*more than this machine's"):
        run_study(spec, problem=tiny_problem, progress=False)
    assert not (tmp_path / "results" / "cases").exists()
