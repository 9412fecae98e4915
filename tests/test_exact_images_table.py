"""The statistics of ``benchmarks/exact_images.py``'s table, against exact answers, and the README's table against
the committed per-case results it is printed from."""

import argparse
import importlib.util
import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("exact_images", ROOT / "benchmarks" / "exact_images.py")
exact_images = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exact_images)


@pytest.mark.parametrize("n", [19, 39, 79, 159, 319])
def test_the_order_statistic_interval_covers_a_new_draw_with_probability_exactly_0_9(n):
    g = torch.Generator().manual_seed(n)
    draws = torch.randn(n, 20_000, generator=g, dtype=torch.float64)
    new = torch.randn(20_000, generator=g, dtype=torch.float64)
    lo, hi = exact_images.order_interval(draws)
    rate = float(((new >= lo) & (new <= hi)).double().mean())
    assert abs(rate - 0.9) < 4 * (0.09 / 20_000) ** 0.5  # 4 binomial standard errors (0.0085)


def test_order_interval_refuses_a_draw_count_without_an_exact_rank():
    with pytest.raises(ValueError, match="19, 39, 59"):
        exact_images.order_interval(torch.zeros(20, 3))


def _record(case, covered, pixels=10):
    return {"case": case, "lesion_covered": covered, "lesion_pixels": pixels}


def test_lesion_gap_is_the_pooled_difference_on_shared_lesion_cases_with_a_paired_interval():
    exact = {0: _record(0, 9), 1: _record(1, 8), 2: _record(2, 0, pixels=0), 3: _record(3, 10)}
    same = [_record(0, 9), _record(1, 8), _record(2, 0, pixels=0)]
    assert exact_images.lesion_gap(exact, same) == (0.0, 0.0, 0.0)
    fewer = [_record(0, 7), _record(1, 6), _record(3, 8), _record(5, 0)]  # case 5 has no exact record: left out
    gap, lo, hi = exact_images.lesion_gap(exact, fewer)
    assert gap == pytest.approx(-0.2) and lo == pytest.approx(-0.2) and hi == pytest.approx(-0.2)
    mixed = [_record(0, 10), _record(1, 4)]
    gap, lo, hi = exact_images.lesion_gap(exact, mixed)
    assert gap == pytest.approx((14 - 17) / 20) and lo < gap < hi and lo >= -0.4 and hi <= 0.1
    assert all(np.isnan(exact_images.lesion_gap(exact, [_record(2, 0, pixels=0)])))


def test_the_bar_against_exact_reads_the_lesion_gap_not_the_nominal_90_percent():
    s = {"cases": 10, "cover": 0.892, "lesion": 0.78, "mae": 0.04, "nfe": 1490}
    assert not exact_images.passes(s)  # 78% lesion-pixel coverage is outside 90 +- 3
    assert exact_images.passes_against_exact(s, -0.02)
    assert not exact_images.passes_against_exact(s, -0.04)
    assert not exact_images.passes_against_exact(s, float("nan"))
    assert not exact_images.passes_against_exact(dict(s, mae=0.06), 0.0)
    assert not exact_images.passes_against_exact(dict(s, nfe=2001), 0.0)


@pytest.mark.parametrize("budget", ["user", "user_n79", "user_n159", "user_n319", "large"])
def test_the_readme_tables_are_what_the_table_command_prints_from_the_committed_results(budget):
    out = io.StringIO()
    with redirect_stdout(out):
        exact_images.table(SimpleNamespace(budgets=[budget], common=False))
    printed = [line for line in out.getvalue().splitlines() if f"| {budget} |" in line]
    readme = [line for line in (ROOT / "README.md").read_text().splitlines() if f"| {budget} |" in line]
    assert printed and readme == printed


@pytest.mark.parametrize("draws, problems", [(159, ("deblur", "inpaint", "mri")), (319, ("deblur",))])
def test_the_readme_verdicts_rest_on_200_cases_of_split_gibbs_smc_at_their_draw_count(draws, problems):
    for problem in problems:
        path = exact_images.RESULTS / f"user_n{draws}" / f"split_gibbs_smc__{problem}.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert sorted(r["case"] for r in records) == list(range(200))
        assert all(r["draws"] == draws and "error" not in r for r in records)


def test_shard_spec_reads_i_of_n_and_names_a_bad_one():
    assert exact_images.shard_spec("1/2") == (1, 2)
    for bad in ("2/2", "-1/2", "1", "a/b"):
        with pytest.raises(argparse.ArgumentTypeError, match="--shard"):
            exact_images.shard_spec(bad)


def test_read_records_drops_and_repairs_a_cut_short_last_line_so_the_next_append_starts_clean(tmp_path, capsys):
    path = tmp_path / "smc__deblur.jsonl"
    path.write_text(json.dumps({"case": 0}) + "\n" + json.dumps({"case": 1}) + "\n" + '{"case": 2, "cov')
    assert [r["case"] for r in exact_images.read_records(path)] == [0, 1]
    assert "cut-short" in capsys.readouterr().err
    assert path.read_text().endswith('"cov')  # reading alone leaves the file as it is
    assert [r["case"] for r in exact_images.read_records(path, repair=True)] == [0, 1]
    with open(path, "a") as fh:
        fh.write(json.dumps({"case": 2}) + "\n")
    assert [r["case"] for r in exact_images.read_records(path)] == [0, 1, 2]
    assert exact_images.read_records(tmp_path / "missing.jsonl") == []


def test_read_records_names_the_file_and_line_of_a_corrupt_record_that_is_not_a_cut_short_write(tmp_path):
    path = tmp_path / "smc__deblur.jsonl"
    path.write_text(json.dumps({"case": 0}) + "\nnot json\n" + json.dumps({"case": 2}) + "\n")
    with pytest.raises(ValueError, match=r"smc__deblur.jsonl, line 2"):
        exact_images.read_records(path, repair=True)
