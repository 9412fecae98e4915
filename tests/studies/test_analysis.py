"""End-to-end analysis against exact answers: exact posterior draws are calibrated by every diagnostic,
draws shrunk about the posterior mean are flagged by every diagnostic, and recalibration restores coverage."""

import json

import numpy as np
import pytest
import torch

from bayesinv.studies import analyze_study, run_study, verdict
from bayesinv.studies.analysis import region_masks

from .conftest import tiny_spec


@pytest.fixture(scope="module")
def analysis(tmp_path_factory, tiny_problem):
    folder = tmp_path_factory.mktemp("study")
    spec = tiny_spec(folder, num_calibration=40, num_test=40, num_ood=3,
                     samplers={"exact": {"sampler": "exact", "num_samples": 40},
                               "over": {"sampler": "exact", "num_samples": 40, "options": {"shrink": 0.5}},
                               "single": {"sampler": "exact", "num_samples": 1}})
    results = run_study(spec, problem=tiny_problem, progress=False)
    out = analyze_study(spec, results, problem=tiny_problem, progress=False)
    return out, results


@pytest.mark.slow
def test_exact_posterior_is_calibrated(analysis):
    out, results = analysis
    assert json.loads((results / "analysis.json").read_text()) == json.loads(json.dumps(out))
    s = out["samplers"]["exact"]
    lo, hi = s["main_case_ci"]
    assert lo <= 0.9 <= hi and s["coverage_class"] == "ok"
    assert s["ece"] < 0.03  # Weibull-position intervals: no finite-S bias at S = 40
    levels, case_lo, case_hi = (np.array(s["coverage"][k]) for k in ("levels", "case_low", "case_high"))
    assert np.mean((case_lo <= levels) & (levels <= case_hi)) >= 0.85
    assert s["sbc"]["pvalue_ks"] > 1e-3
    assert all(v["pvalue_ks"] > 1e-3 for v in s["sbc"]["summaries"].values())
    assert s["tarp"]["max_deviation"] <= s["tarp"]["deviation_band"]
    h = out["hallucination"]["exact"]
    assert h["chi2"]["pvalue_ks_first"] > 1e-3  # one exact draw per case: chi^2 p-values are uniform
    assert h["nullspace"]["null_share"] == 0.0  # denoising has no null space
    assert h["z"]["fraction_above"] < 5 * h["z"]["expected_fraction"]
    assert h["ood"]["num_cases"] == 3 and h["lesion"] is None  # prior draws carry no lesions


@pytest.mark.slow
def test_overconfident_sampler_is_flagged_and_recalibrated(analysis):
    out, _ = analysis
    s = out["samplers"]["over"]
    assert s["main_case_ci"][1] < 0.9 and s["coverage_class"] == "bad" and "over-confident" in s["verdict"]
    assert s["sbc"]["pvalue_ks"] < 1e-6
    assert s["tarp"]["max_deviation"] > s["tarp"]["deviation_band"]
    z = out["hallucination"]["over"]["z"]
    assert z["fraction_above"] > 10 * z["expected_fraction"]
    for name in ("crc", "crc_pixel", "crc_grouped"):
        after = s["conformal_all"][name]
        assert after["coverage_after"] > 0.87 and after["width_after"] > after["width_before"]
    # CRC's expected-risk guarantee with n = 40: lambda ~ 2 undoes the shrink by 0.5
    assert 1.6 < s["conformal_all"]["crc"]["lambda"] < 3.0
    assert out["samplers"]["exact"]["conformal_all"]["crc"]["lambda"] == pytest.approx(1.0, abs=0.4)


@pytest.mark.slow
def test_single_draw_is_treated_as_a_point_estimate(analysis):
    out, _ = analysis
    s = out["samplers"]["single"]
    assert s["point_estimate"] and s["main_coverage"] is None and s["coverage_class"] == "warn"
    # split-conformal curve from calibration residuals: close to nominal at every level
    assert np.max(np.abs(np.array(s["coverage"]["empirical"]) - np.array(s["coverage"]["levels"]))) < 0.06
    assert s["conformal"]["coverage_after"] > 0.85 and "sbc" not in s
    assert out["hallucination"]["single"]["z"] is None


def test_verdict_wording():
    text, css = verdict(0.9, 0.903, (0.891, 0.914), None)
    assert css == "ok"
    assert text == "90% intervals cover 90.3% [89.1, 91.4] of pixels — calibrated within the uncertainty"
    after = {"coverage_after": 0.95, "case_ci_after": (0.94, 0.96), "width_after": 2.0, "width_before": 1.0,
             "controlled": True, "num_calibration": 20}
    text, css = verdict(0.9, 0.97, (0.96, 0.98), after)
    assert css == "warn" and text.endswith("after recalibration 95.0% [94.0, 96.0] (width x2.00)")
    assert verdict(0.9, None, None, None)[0].startswith("point estimate")
    text, _ = verdict(0.9, 0.9, (0.85, 0.95), dict(after, controlled=False, num_calibration=3))
    assert text.endswith("cannot reach risk 0.1 with only 3 calibration cases")


def test_region_masks_partition_the_pixels():
    truth = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    truth[..., 4:] = 1.0  # a vertical step between columns 3 and 4
    lesion = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    lesion[..., 0, 0] = True
    masks = region_masks(truth, lesion)
    total = masks["lesion"].astype(int) + masks["edges"] + masks["background"]
    assert (total == 1).all()
    assert masks["edges"][0, 0, 3:, 3:5].all() and not masks["edges"][..., [0, 1, 6, 7]].any()


def test_missing_results_are_reported_or_skipped(tmp_path, tiny_problem):
    spec = tiny_spec(tmp_path)
    with pytest.raises(FileNotFoundError, match="run the study"):
        analyze_study(spec, tmp_path, problem=tiny_problem, progress=False)
    results = run_study(spec, problem=tiny_problem, labels=["exact"], progress=False)
    with pytest.raises(FileNotFoundError, match="'calibration' results of sampler 'over' are missing"):
        analyze_study(spec, results, problem=tiny_problem, progress=False)
    out = analyze_study(spec, results, problem=tiny_problem, progress=False, skip_incomplete=True)
    assert list(out["samplers"]) == ["exact"] and out["incomplete"] == ["over"]
