"""Print the calibration and hallucination tables of the committed study reports (markdown).

The numbers come from ``calibration/<study>/report.json``, written by
``bayesinv calibrate calibration/<study>/study.toml`` (rerun that to regenerate them; it resumes).

Usage: ``python benchmarks/calibration_table.py [--summary] [calibration/<study> ...]``

``--summary``: one row per study and sampler (the README's table), with the coverage of lesion pixels
(Clopper–Pearson) and case-bootstrap 95% intervals (2000 resamples, seed 0) for the AUC and the ECE of
``P(lesion | y)``, recomputed with :func:`bayesinv.diagnostics.hallucination.lesion_audit` from the per-case
probabilities the report records.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pct(v, digits=1):
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _ci(pair, digits=1):
    return "" if not pair or pair[0] is None else f" [{100 * pair[0]:.{digits}f}, {100 * pair[1]:.{digits}f}]"


def tables(report: dict) -> str:
    level = report["main_level"]
    lines = [f"### {report['study']['name']} ({report['study']['operator']}, prior {report['study']['prior']}, "
             f"{report['study']['num_calibration']} calibration / {report['study']['num_test']} test cases)", "",
             f"| sampler | PSNR | s/case | coverage @{level:.0%} [95% CI cases] | ECE | SBC KS p | TARP dev (band) "
             "| after CRC | after RCPS |", "|---|---|---|---|---|---|---|---|---|"]
    for label, s in report["samplers"].items():
        sbc, tarp, rcps, crc = s.get("sbc"), s.get("tarp"), s["rcps"], s["conformal"]
        ece = "–" if s["ece"] is None else f"{s['ece']:.3f}"
        sbc_p = "–" if not sbc else f"{sbc['pvalue_ks']:.2g}"
        tarp_dev = "–" if not tarp else f"{tarp['max_deviation']:.2f} ({tarp['deviation_band']:.2f})"
        after = f"{_pct(crc['coverage_after'])}{_ci(crc['case_ci_after'])}" if crc["controlled"] else "not reachable"
        after_rcps = _pct(rcps["coverage_after"]) if rcps["controlled"] else "not controllable"
        lines.append(f"| {label} | {s['psnr']:.2f} | {s['wall_time']:.1f} | {_pct(s['main_coverage'])}"
                     f"{_ci(s['main_case_ci'])} | {ece} | {sbc_p} | {tarp_dev} | {after} | {after_rcps} |")
    hall = report.get("hallucination")
    if hall:
        lines += ["", "| sampler | false-lesion rate [CP] | missed-lesion rate [CP] | AUC | Brier | ECE of P(lesion given y) "
                  "| χ² rejected (1% expected) | abs(z)>3 (0.27% expected) |", "|---|---|---|---|---|---|---|---|"]
        for label, h in hall.items():
            les, z = h.get("lesion"), h.get("z")
            if les:
                cells = (f"{_pct(les['false_lesion_rate'], 0)}{_ci(les['false_lesion_cp'], 0)} "
                         f"({les['false_lesions']}/{les['num_lesion_free']}) | "
                         f"{_pct(les['missed_lesion_rate'], 0)}{_ci(les['missed_lesion_cp'], 0)} "
                         f"({les['missed_lesions']}/{les['num_lesion']}) | {les['auc']:.2f} | {les['brier']:.3f} | "
                         f"{les['ece']:.3f}")
            else:
                cells = "– | – | – | – | –"
            lines.append(f"| {label} | {cells} | {_pct(h['chi2']['rejected'])} | "
                         f"{_pct(z['fraction_above'], 2) if z else '–'} |")
    return "\n".join(lines)


def _lesion_intervals(lesion: dict, resamples: int = 2000) -> tuple[list[float], list[float]]:
    """Case-bootstrap 95% intervals of the lesion audit's AUC and ECE (resamples with both classes present)."""
    import numpy as np
    import torch

    from bayesinv.diagnostics.hallucination import lesion_audit

    prob, truth = np.asarray(lesion["prob"], float), np.asarray(lesion["has_lesion"], bool)
    rng = np.random.default_rng(0)
    aucs, eces = [], []
    for _ in range(resamples):
        i = rng.integers(0, len(prob), len(prob))
        if truth[i].all() or not truth[i].any():
            continue
        audit = lesion_audit(torch.as_tensor(prob[i]), torch.as_tensor(truth[i]))
        aucs.append(audit.auc)
        eces.append(audit.ece)
    return [float(np.percentile(aucs, q)) for q in (2.5, 97.5)], [float(np.percentile(eces, q)) for q in (2.5, 97.5)]


def summary(reports: list[dict]) -> str:
    """One row per study and sampler: what issue 16 asks the powered studies to report."""
    lines = ["| study | sampler (test cases) | PSNR | 90% coverage [case CI] | lesion pixels [CP] | SBC KS p | TARP dev "
             "(band) | after CRC [case CI] | false lesions | missed lesions | AUC [boot] | ECE of P(lesion \\| y) "
             "[boot] |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for report in reports:
        study = report["study"]["name"].removeprefix("phantom32-")
        for label, s in report["samplers"].items():
            strata = (s.get("stratified") or {}).get("lesion")
            lesion_cov = "–" if not strata else f"{_pct(strata['coverage'])} [{100 * strata['cp_low']:.0f}, " \
                                                f"{100 * strata['cp_high']:.0f}]"
            cov = "–" if s["point_estimate"] else f"{_pct(s['main_coverage'])}{_ci(s['main_case_ci'])}"
            sbc, tarp, crc = s.get("sbc"), s.get("tarp"), s["conformal"]
            after = f"{_pct(crc['coverage_after'])}{_ci(crc['case_ci_after'])}" if crc["controlled"] \
                else "too few cases"
            les = ((report.get("hallucination") or {}).get(label) or {}).get("lesion")
            if les:
                auc_ci, ece_ci = _lesion_intervals(les)
                lesion_cells = (f"{les['false_lesions']}/{les['num_lesion_free']} | "
                                f"{les['missed_lesions']}/{les['num_lesion']} | {les['auc']:.2f} "
                                f"[{auc_ci[0]:.2f}, {auc_ci[1]:.2f}] | {les['ece']:.2f} [{ece_ci[0]:.2f}, {ece_ci[1]:.2f}]")
            else:
                lesion_cells = "– | – | – | –"
            lines.append(f"| {study} | {label} ({s['num_test']}) | {s['psnr']:.1f} | {cov} | {lesion_cov} | "
                         f"{'–' if not sbc else format(sbc['pvalue_ks'], '.0e')} | "
                         f"{'–' if not tarp else format(tarp['max_deviation'], '.2f') + ' (' + format(tarp['deviation_band'], '.2f') + ')'} | "
                         f"{after} | {lesion_cells} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    brief = "--summary" in argv
    argv = [a for a in argv if a != "--summary"]
    folders = [Path(a) for a in argv] or sorted(p.parent for p in (ROOT / "calibration").glob("*/report.json"))
    if not folders:
        print("no calibration/<study>/report.json found: run `bayesinv calibrate calibration/<study>/study.toml`")
        return 1
    reports = [json.loads((folder / "report.json").read_text()) for folder in folders]
    if brief:
        print(summary(reports))
        return 0
    for report in reports:
        print(tables(report), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
