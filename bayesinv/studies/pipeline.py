"""One call for the whole study: run (resumable) -> analyse -> render the report.

>>> callable(calibrate)
True
"""

from __future__ import annotations

import os
from pathlib import Path

from bayesinv.studies.analysis import analyze_study
from bayesinv.studies.lock import study_lock
from bayesinv.studies.runner import run_study
from bayesinv.studies.spec import StudySpec, load_study

__all__ = ["calibrate"]


def calibrate(study: StudySpec | str | os.PathLike, out: str | os.PathLike | None = None, *,
              report: str | os.PathLike | None = None, audit: bool | None = None, backend: str = "local",
              workers: int = 1, progress: bool = True, problem=None, recompute: bool = True) -> Path:
    """Run every missing (case x sampler) of ``study``, analyse the results and write the report.

    Parameters
    ----------
    study : a :class:`StudySpec`, or the path of a ``study.toml`` (or of its folder).
    out : results folder (default ``<study folder>/results``).
    report : HTML path (default ``<results>/../report.html``; ``report.json`` lands next to it).
    audit : run the hallucination audit (default: the spec's ``diagnostics.audit``).
    backend, workers, progress, problem, recompute : as in :func:`~bayesinv.studies.runner.run_study`.

    Returns the path of ``report.html``.
    """
    from bayesinv.report import render_report

    spec = study if isinstance(study, StudySpec) else load_study(study)
    results = Path(out) if out is not None else spec.folder / "results"
    with study_lock(results):  # one run of this folder at a time, from the first sample to the report
        run_study(spec, results, backend=backend, workers=workers, progress=progress, problem=problem,
                  recompute=recompute)
        analyze_study(spec, results, audit=audit, progress=progress, problem=problem)
        return render_report(results, report)
