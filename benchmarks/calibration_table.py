"""Print the calibration and hallucination tables of the committed study reports (markdown).

The numbers come from ``calibration/<study>/report.json``, written by
``bayesinv calibrate calibration/<study>/study.toml`` (rerun that to regenerate them; it resumes).

Usage: ``python benchmarks/calibration_table.py [calibration/<study> ...]``
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


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv] or sorted(p.parent for p in (ROOT / "calibration").glob("*/report.json"))
    if not folders:
        print("no calibration/<study>/report.json found: run `bayesinv calibrate calibration/<study>/study.toml`")
        return 1
    for folder in folders:
        print(tables(json.loads((folder / "report.json").read_text())), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
