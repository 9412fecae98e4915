"""Study runner: one atomic file per (case, sampler), resumable, identical across backends."""

import sys
import types

import pytest
import torch
from safetensors.torch import load_file

from bayesinv.studies import StudySpecError, load_case, result_path, run_sampler, run_study, task_seed
from bayesinv.studies import runner
from bayesinv.studies.runner import is_done, study_tasks

from .conftest import tiny_spec


def _samples(results, spec):
    return {t: load_file(str(result_path(results, *t)))["samples"] for t in study_tasks(spec)}


def test_one_file_per_task_with_seeded_draws(tmp_path, tiny_problem):
    spec = tiny_spec(tmp_path, samplers={"exact": {"sampler": "exact", "num_samples": 4},
                                         "sub": {"sampler": "exact", "num_samples": 3, "max_cases": 2}}, num_ood=2)
    seen = []
    results = run_study(spec, problem=tiny_problem, progress=False, on_task=lambda *a: seen.append(a))
    assert results == tmp_path / "results"
    # exact: 6 + 6 + 2 ood cases; sub: 2 per split
    assert len(seen) == 14 + 6 and all(status == "done" for *_, status in seen)
    assert not list(results.rglob("*.tmp"))
    case = load_case(results, "test", 1)
    assert case["truth"].shape == (1, 8, 8) and case["y"].shape == (1, 8, 8) and case["audit_center"].shape == (2,)
    # the measurement is truth + N(0, 0.1^2) noise drawn from the case's own seed
    noise = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(task_seed(3, "test", 1, "y")),
                        dtype=torch.float64)
    torch.testing.assert_close(case["y"], case["truth"] + 0.1 * noise[0])
    # the posterior's draws come from crc32(seed, split, index, label)
    post = load_file(str(result_path(results, "sub", "calibration", 1)))["samples"]
    gen = torch.Generator().manual_seed(task_seed(3, "calibration", 1, "sub"))
    again = run_sampler("exact", tiny_problem, load_case(results, "calibration", 1)["y"][None], num_samples=3,
                        steps=None, generator=gen, options={})
    torch.testing.assert_close(post, again.samples)
    assert not result_path(results, "sub", "test", 2).exists()


def test_interrupted_study_resumes_without_loss_or_recompute(tmp_path, tiny_problem):
    spec = tiny_spec(tmp_path)
    reference = run_study(spec, tmp_path / "reference", problem=tiny_problem, progress=False)
    calls = []

    def interrupt(label, split, index, status):
        calls.append((label, split, index))
        if len(calls) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(spec, tmp_path / "resumed", problem=tiny_problem, progress=False, on_task=interrupt)
    first = {t: result_path(tmp_path / "resumed", *t).stat().st_mtime_ns for t in calls}
    second = []
    run_study(spec, tmp_path / "resumed", problem=tiny_problem, progress=False, on_task=lambda *a: second.append(a))
    assert len(second) == len(study_tasks(spec)) - 5  # nothing repeated
    assert {t[:3] for t in second}.isdisjoint(calls)
    assert {t: result_path(tmp_path / "resumed", *t).stat().st_mtime_ns for t in calls} == first  # nothing rewritten
    ref, res = _samples(reference, spec), _samples(tmp_path / "resumed", spec)
    assert all(torch.equal(ref[t], res[t]) for t in ref)  # identical to the uninterrupted run


def test_half_written_result_is_redone(tmp_path, tiny_problem):
    spec = tiny_spec(tmp_path)
    results = run_study(spec, problem=tiny_problem, progress=False)
    path = result_path(results, "exact", "test", 0)
    path.with_name(path.name + ".json").unlink()  # killed between the two renames
    assert not is_done(results, "exact", "test", 0, spec=spec, problem=tiny_problem)
    redone = []
    run_study(spec, problem=tiny_problem, progress=False, on_task=lambda *a: redone.append(a[:3]))
    assert redone == [("exact", "test", 0)]


class _FakeRay(types.ModuleType):
    """Ray's API surface used by the backend, executed in this process."""

    def __init__(self):
        super().__init__("ray")
        self.submitted = 0

    def is_initialized(self):
        return True

    def remote(self, fn):
        fake = self

        class Remote:
            def remote(self, *args, **kwargs):
                fake.submitted += 1
                return fn(*args, **kwargs)

        return Remote()

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref


def test_ray_backend_gives_identical_results(tmp_path, tiny_problem, monkeypatch):
    spec = tiny_spec(tmp_path)
    serial = run_study(spec, tmp_path / "serial", problem=tiny_problem, progress=False)
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(runner._PROBLEMS, (repr(spec), "cpu"), tiny_problem)  # what a worker builds from the spec
    distributed = run_study(spec, tmp_path / "ray", backend="ray", progress=False)
    assert fake.submitted == len(study_tasks(spec))
    a, b = _samples(serial, spec), _samples(distributed, spec)
    assert all(torch.equal(a[t], b[t]) for t in a)


@pytest.mark.slow
def test_process_backend_gives_identical_results(tmp_path, tiny_problem, monkeypatch):
    spec = tiny_spec(tmp_path)
    serial = run_study(spec, tmp_path / "serial", problem=tiny_problem, progress=False)
    parallel = run_study(spec, tmp_path / "parallel", workers=2, progress=False)  # spawned workers rebuild the problem
    a, b = _samples(serial, spec), _samples(parallel, spec)
    assert all(torch.equal(a[t], b[t]) for t in a)


def test_errors(tmp_path, tiny_problem, monkeypatch):
    spec = tiny_spec(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(runner._PROBLEMS, (repr(spec), "cpu"), tiny_problem)
    with pytest.raises(StudySpecError, match=r"pip install 'bayesinv\[ray\]'"):
        run_study(spec, tmp_path / "r", backend="ray", progress=False)
    with pytest.raises(StudySpecError, match="unknown backend 'mpi'"):
        run_study(spec, tmp_path / "r", backend="mpi", progress=False)
    with pytest.raises(StudySpecError, match="serial local backend"):
        run_study(spec, tmp_path / "r", problem=tiny_problem, workers=2, progress=False)
    with pytest.raises(StudySpecError, match=r"unknown sampler label\(s\) \['nope'\]"):
        run_study(spec, tmp_path / "r", problem=tiny_problem, labels=["nope"], progress=False)
    with pytest.raises(StudySpecError, match="unknown sampler 'nope'; choose one of"):
        run_sampler("nope", tiny_problem, torch.zeros(1, 1, 8, 8), num_samples=1, steps=None,
                    generator=torch.Generator(), options={})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="cannot write study results"):
        run_study(spec, blocker / "results", problem=tiny_problem, progress=False)


def test_measurements_are_cast_to_a_network_priors_precision():
    class NetworkPrior:
        network = torch.nn.Linear(2, 2)  # float32 parameters

    op_problem = types.SimpleNamespace(prior=NetworkPrior())
    y = torch.zeros(1, 4, dtype=torch.float64)
    assert runner._in_prior_dtype(op_problem, y).dtype == torch.float32
    assert runner._in_prior_dtype(op_problem, y.to(torch.complex128)).dtype == torch.complex64
    assert runner._in_prior_dtype(types.SimpleNamespace(prior=object()), y).dtype == torch.float64


def test_ood_split_from_shipped_images(tmp_path, tiny_problem):
    from bayesinv.data.images import load_images

    doc_spec = tiny_spec(tmp_path, num_ood=2, samplers={"exact": {"sampler": "exact", "num_samples": 2}})
    spec = type(doc_spec)(**{**doc_spec.__dict__, "ood_family": "images"})
    results = run_study(spec, problem=tiny_problem, progress=False)
    for i in range(2):
        case = load_case(results, "ood", i)
        torch.testing.assert_close(case["truth"], load_images(size=8)[i].double())
        assert not case["has_lesion"]
    too_many = type(doc_spec)(**{**spec.__dict__, "num_ood": 50})
    with pytest.raises(StudySpecError, match="'data.num_ood' = 50 but bayesinv.data.images ships"):
        run_study(too_many, tmp_path / "other", problem=tiny_problem, progress=False)


def test_a_device_reaches_every_task_on_every_backend_and_is_not_part_of_the_hash(tmp_path, tiny_problem,
                                                                                 monkeypatch):
    """``run_study(device=...)``: every task gets the device (serial and Ray), builds the spec's problem there
    and samples on it; the files equal those of a run without a device, and a study finished without one is
    complete for a run with one (nothing recomputed)."""
    spec = tiny_spec(tmp_path)
    monkeypatch.setitem(runner._PROBLEMS, (repr(spec), "cpu"), tiny_problem)  # what study_problem builds from the spec
    plain = run_study(spec, tmp_path / "plain", progress=False)
    devices, real = [], runner.run_task

    def spy(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_task", spy)
    moved = run_study(spec, tmp_path / "device", progress=False, device="cpu")
    assert devices == ["cpu"] * len(study_tasks(spec))
    a, b = _samples(plain, spec), _samples(moved, spec)
    assert all(b[t].device.type == "cpu" and torch.equal(a[t], b[t]) for t in a)
    monkeypatch.setitem(sys.modules, "ray", _FakeRay())
    devices.clear()
    run_study(spec, tmp_path / "ray", backend="ray", progress=False, device="cpu")
    assert devices == ["cpu"] * len(study_tasks(spec))
    seen = []
    run_study(spec, plain, progress=False, device="cpu", on_task=lambda *a: seen.append(a))
    assert seen == []  # finished without a device: nothing to redo with one
    with pytest.raises(StudySpecError, match="move a custom problem= yourself"):
        run_study(spec, tmp_path / "custom", problem=tiny_problem, progress=False, device="cpu")
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        run_study(spec, tmp_path / "bad", progress=False, device="gpu")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "custom").exists()  # refused before any work
