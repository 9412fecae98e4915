"""Case batching in the study runner (``batch_cases``): one sampler call per group of cases, one verified file
per case, the grouping in every result's provenance, nothing saved from an interrupted call; and the runner's
progress bar (time left) and network reuse across tasks."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from bayesinv import builders
from bayesinv.samplers import sample_ddrm_cases
from bayesinv.studies import load_case, result_path, run_study, runner, store
from bayesinv.studies.runner import case_group, group_seed, is_done, study_tasks

from .conftest import tiny_spec


def _ddrm_spec(folder, batch_cases=None, max_cases=None, num=6):
    table = {"sampler": "ddrm", "num_samples": 3, "steps": 4}
    if batch_cases is not None:
        table["batch_cases"] = batch_cases
    if max_cases is not None:
        table["max_cases"] = max_cases
    return tiny_spec(folder, samplers={"ddrm": table}, num_calibration=num, num_test=num)


def _samples(results, spec):
    return {t: load_file(str(result_path(results, *t)))["samples"] for t in study_tasks(spec)}


def _recorded(results, task):
    path = result_path(results, *task)
    return json.loads(path.with_name(path.name + ".json").read_text())["extras"]["provenance"]


def test_a_group_of_cases_is_one_sampler_call_with_one_verified_file_per_case(tmp_path, tiny_problem):
    spec = _ddrm_spec(tmp_path, batch_cases=4)  # 6 cases per split: groups (0, 1, 2, 3) and (4, 5)
    assert case_group(spec, "ddrm", "test", 5) == (4, 5) and case_group(spec, "ddrm", "test", 2) == (0, 1, 2, 3)
    seen = []
    results = run_study(spec, problem=tiny_problem, progress=False, on_task=lambda *a: seen.append(a))
    assert sorted(a[:3] for a in seen) == sorted(study_tasks(spec)) and {a[3] for a in seen} == {"done"}
    assert all(is_done(results, *t, spec=spec, problem=tiny_problem) for t in study_tasks(spec))
    files = _samples(results, spec)
    for split in ("calibration", "test"):
        for group in ((0, 1, 2, 3), (4, 5)):
            y = torch.stack([load_case(results, split, i)["y"] for i in group])
            posts = sample_ddrm_cases(tiny_problem, y, num_samples=3, steps=4, progress=False,
                                      generator=torch.Generator().manual_seed(group_seed(spec, "ddrm", split, group)))
            for i, post in zip(group, posts, strict=True):
                assert torch.equal(files[("ddrm", split, i)], post.samples)
                assert _recorded(results, ("ddrm", split, i))["case_group"] == list(group)


def test_batch_cases_one_and_single_case_groups_are_the_unbatched_study_bit_for_bit(tmp_path, tiny_problem):
    plain_spec = _ddrm_spec(tmp_path / "plain", max_cases=5)
    plain = run_study(plain_spec, problem=tiny_problem, progress=False)
    one = run_study(_ddrm_spec(tmp_path / "one", batch_cases=1, max_cases=5), problem=tiny_problem, progress=False)
    four = run_study(_ddrm_spec(tmp_path / "four", batch_cases=4, max_cases=5), problem=tiny_problem,
                     progress=False)  # groups (0..3) and (4,)
    a, b, c = _samples(plain, plain_spec), _samples(one, plain_spec), _samples(four, plain_spec)
    for task in study_tasks(plain_spec):
        assert torch.equal(a[task], b[task]) and _recorded(plain, task) == _recorded(one, task)
        # the unbatched provenance is store.result_provenance's, as before batching existed
        case_hash = runner._case_hash(plain_spec, task[1], tiny_problem)
        assert _recorded(plain, task)["hash"] == store.result_provenance(plain_spec, *task, case_hash)["hash"]
        lone = task[2] == 4  # the last group holds one case: today's task, same seed, same hash
        assert torch.equal(a[task], c[task]) == lone
        assert (_recorded(four, task)["hash"] == _recorded(plain, task)["hash"]) == lone


def test_another_grouping_makes_grouped_results_stale(tmp_path, tiny_problem):
    results = run_study(_ddrm_spec(tmp_path, batch_cases=4), problem=tiny_problem, progress=False)
    regrouped = _ddrm_spec(tmp_path, batch_cases=2)  # (0, 1), (2, 3), (4, 5): only (4, 5) is the same group
    assert [i for i in range(6) if is_done(results, "ddrm", "test", i, spec=regrouped, problem=tiny_problem)] == [4, 5]
    with pytest.raises(store.StaleResultsError, match="do not match the spec"):
        run_study(regrouped, problem=tiny_problem, progress=False, recompute=False)
    redone = []
    run_study(regrouped, problem=tiny_problem, progress=False, on_task=lambda *a: redone.append(a[:3]))
    assert sorted(redone) == sorted(("ddrm", s, i) for s in ("calibration", "test") for i in range(4))
    fresh = run_study(regrouped, tmp_path / "fresh", problem=tiny_problem, progress=False)
    a, b = _samples(results, regrouped), _samples(fresh, regrouped)
    assert all(torch.equal(a[t], b[t]) for t in a)


def test_an_interrupted_group_saves_nothing_and_resumes(tmp_path, tiny_problem, monkeypatch):
    spec = _ddrm_spec(tmp_path, batch_cases=4)
    real, calls = builders.run_sampler_cases, []

    def ctrl_c_on_second_call(*args, **kwargs):
        calls.append(args[2].shape[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(builders, "run_sampler_cases", ctrl_c_on_second_call)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, problem=tiny_problem, progress=False)
    results = tmp_path / "results"
    written = sorted(p.name for p in (results / "ddrm").glob("*.safetensors"))
    assert calls == [4, 2] and written == [f"calibration-000{i}.safetensors" for i in range(4)]

    def chains_cut_short(*args, **kwargs):  # a chunked sampler's Ctrl-C: finished chains and a warning
        import warnings

        posts = real(*args, **kwargs)
        warnings.warn("interrupted after 1 chunk", RuntimeWarning)
        posts[1].samples = posts[1].samples[:1]
        return posts

    monkeypatch.setattr(builders, "run_sampler_cases", chains_cut_short)
    with pytest.raises(KeyboardInterrupt, match="nothing was saved"):
        run_study(spec, problem=tiny_problem, progress=False)
    assert sorted(p.name for p in (results / "ddrm").glob("*.safetensors")) == written
    monkeypatch.setattr(builders, "run_sampler_cases", real)
    redone = []
    run_study(spec, problem=tiny_problem, progress=False, on_task=lambda *a: redone.append(a[:3]))
    assert sorted(redone) == sorted(t for t in study_tasks(spec) if not (t[1] == "calibration" and t[2] < 4))


def test_progress_counts_cases_and_shows_the_time_left(tmp_path, tiny_problem, capsys):
    run_study(_ddrm_spec(tmp_path, batch_cases=4), problem=tiny_problem, progress=True)
    err = capsys.readouterr().err
    assert "study tiny" in err and "12/12" in err
    assert re.search(r"\d+:\d\d<\d+:\d\d", err), err  # tqdm's [elapsed<remaining]: the estimated time left


def test_one_process_builds_the_problem_and_its_network_once(tmp_path, monkeypatch):
    built = []
    real = runner.resolve_prior

    def counting(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_PROBLEMS", {})
    monkeypatch.setattr(runner, "resolve_prior", counting)
    spec = tiny_spec(tmp_path, samplers={"ddrm": {"sampler": "ddrm", "num_samples": 2, "steps": 3},
                                         "dps": {"sampler": "dps", "num_samples": 2, "steps": 3, "batch_cases": 3}},
                     num_calibration=3, num_test=3)
    run_study(spec, progress=False)
    assert len(built) == 1  # 12 cases of two samplers, one prior
