"""Run the committed calibration studies sampler by sampler, analyse and render their reports.

Same result as ``bayesinv audit calibration/<study>/study.toml`` for each study, except that a sampler
that fails is logged and left out of the report (``analysis.json`` lists it under ``incomplete``)
instead of stopping the study. Resumable: finished (case, sampler) results are kept.

Usage: ``python benchmarks/run_calibration_studies.py [phantom32-deblur phantom32-inpaint phantom32-mri4x]``
Then: ``python benchmarks/calibration_table.py`` prints the tables.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from bayesinv.report import render_report
from bayesinv.studies import analyze_study, load_study, run_study

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("phantom32-deblur", "phantom32-inpaint", "phantom32-mri4x")


def run(name: str) -> Path:
    spec = load_study(ROOT / "calibration" / name / "study.toml")
    for sampler in spec.samplers:
        start = time.perf_counter()
        try:
            run_study(spec, labels=[sampler.label], progress=True)
            print(f"[{name}] {sampler.label}: done in {time.perf_counter() - start:.0f} s", flush=True)
        except Exception:  # noqa: BLE001 - log and continue with the other samplers
            print(f"[{name}] {sampler.label}: FAILED after {time.perf_counter() - start:.0f} s\n"
                  f"{traceback.format_exc()}", flush=True)
    results = spec.folder / "results"
    analysis = analyze_study(spec, results, audit=True, skip_incomplete=True)
    if analysis["incomplete"]:
        print(f"[{name}] left out of the report: {analysis['incomplete']}", flush=True)
    return render_report(results)


def main(argv: list[str]) -> int:
    for name in argv or STUDIES:
        print(f"[{name}] report: {run(name)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
