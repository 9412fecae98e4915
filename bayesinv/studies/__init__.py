"""Calibration and hallucination studies: a TOML spec -> resumable runs -> analysis -> report.

``load_study(path)`` reads ``calibration/<study>/study.toml``; ``run_study(spec)`` runs every
(case x sampler) once, one atomically written result file per case (resumable, local processes or
Ray); ``analyze_study(spec, results)`` computes every diagnostic into ``analysis.json``;
:func:`bayesinv.report.render_report` renders it. :func:`calibrate` (and ``bayesinv calibrate`` /
``bayesinv audit``) do all three.
"""

from bayesinv.studies.analysis import analyze_study, calibration_summary, load_split, verdict
from bayesinv.studies.audit import audit_sampler, hallucination_verdict, roc_curve
from bayesinv.studies.backends import BACKENDS, run_tasks
from bayesinv.studies.pipeline import calibrate
from bayesinv.studies.runner import (SPLITS, build_problem, case_path, load_case, resolve_prior, result_path,
                                     run_sampler, run_study, task_seed)
from bayesinv.studies.spec import SamplerSpec, StudySpec, StudySpecError, load_study, parse_study

__all__ = ["calibrate", "load_study", "parse_study", "run_study", "analyze_study", "StudySpec", "SamplerSpec",
           "StudySpecError", "build_problem", "resolve_prior", "run_sampler", "case_path", "result_path", "load_case",
           "task_seed", "SPLITS", "BACKENDS", "run_tasks", "calibration_summary", "load_split", "verdict",
           "audit_sampler", "hallucination_verdict", "roc_curve"]
