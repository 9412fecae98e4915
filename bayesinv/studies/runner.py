"""Run a study: every (test case x sampler) once, one result file per case, resumable.

Layout of a results folder (default ``<study folder>/results``)::

    .lock                                      held while a run writes here (:mod:`~bayesinv.studies.lock`)
    cases/<split>-<index>.safetensors        truth, measurement y, lesion mask, audit centre
    <sampler label>/<split>-<index>.safetensors   the Posterior (+ .json)

Splits: ``calibration`` (conformal recalibration), ``test`` (every diagnostic) and, when
``data.num_ood > 0``, ``ood`` (out-of-distribution images, audited only). Every file records the hash of
everything that produced it (:mod:`~bayesinv.studies.store`) and counts as done only when it opens, has
the expected shape and chain count, and its hash is the one the current spec gives; anything else (a spec
edit, a truncated file, a result cut short by Ctrl-C) is named and computed again, so a rerun after any
edit gives exactly what a fresh run gives, and an interrupted study resumes without losing or repeating
work. Each task draws from its own generator seeded by ``crc32(study seed, split, index, label)``, so
results do not depend on the backend, the number of workers or the order of the tasks.

Case batching: a sampler with ``batch_cases = k > 1`` (one of :data:`~bayesinv.samplers.CASE_SAMPLERS`) runs
the cases of a split in groups of ``k`` consecutive cases (:func:`case_group`; the last group may be smaller),
one sampler call per group, whose chains share every network call; each case still gets its own result file.
A group of several cases draws from one generator seeded by ``crc32(study seed, split, "first-last", label)``,
so a case's draws depend on its group, and each of its results records the group in its provenance: a
result computed in another grouping is stale, never silently reused. A group of one case is exactly today's
task (same seed, same provenance), so ``batch_cases = 1`` (the default) changes nothing. A group is computed
whole when any of its results is missing or stale, and only those are written; Ctrl-C during the call saves
nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from bayesinv import builders
from bayesinv.builders import make_problem, resolve_prior
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.studies import store
from bayesinv.studies.backends import run_tasks
from bayesinv.studies.lock import study_lock
from bayesinv.builders import check_memory
from bayesinv.studies.spec import StudySpec, StudySpecError, check_sampler_options

__all__ = ["run_study", "build_problem", "resolve_prior", "case_path", "result_path", "load_case", "task_seed",
           "run_sampler", "splits", "sampler_cases", "case_group", "group_seed", "is_done", "result_problem",
           "check_sampler_options", "SPLITS"]

LOG = logging.getLogger("bayesinv.studies")

SPLITS = ("calibration", "test")


def task_seed(*parts) -> int:
    """A stable 31-bit seed from the given parts (``zlib.crc32`` of their text).

    >>> task_seed(0, "test", 3, "dps") == task_seed(0, "test", 3, "dps")
    True
    """
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def build_problem(spec: StudySpec, prior=None) -> InverseProblem:
    """The study's inverse problem (operator + Gaussian noise + prior), by :func:`bayesinv.builders.make_problem`."""
    try:
        return make_problem(spec.operator, image_size=spec.image_size, noise_sigma=spec.noise_sigma, prior=prior,
                            seed=spec.seed, operator_options=spec.operator_options)
    except TypeError as exc:
        raise StudySpecError(f"study spec: bad 'problem.operator_options' for {spec.operator!r}: {exc}") from exc


_PROBLEMS: dict[tuple[str, str], InverseProblem] = {}  # (repr(spec), device name) -> problem


def study_problem(spec: StudySpec, device: str | torch.device | None = None) -> InverseProblem:
    """``build_problem(spec, resolve_prior(...))``, cached per process and device (workers reuse it across
    tasks). With a ``device`` other than the CPU, the operator and the prior (network or analytic) live there."""
    device = None if device is None else torch.device(device)
    key = (repr(spec), "cpu" if device is None else str(device))
    if key not in _PROBLEMS:
        problem = build_problem(spec, resolve_prior(spec.prior, spec.image_size))
        if device is not None:
            problem.operator.to(device)
            problem.prior.to(device)
        _PROBLEMS[key] = problem
    return _PROBLEMS[key]


def splits(spec: StudySpec) -> tuple[str, ...]:
    """The study's splits: calibration, test and (if ``num_ood > 0``) ood."""
    return SPLITS + (("ood",) if spec.num_ood > 0 else ())


def split_size(spec: StudySpec, split: str) -> int:
    return {"calibration": spec.num_calibration, "test": spec.num_test, "ood": spec.num_ood}[split]


def _sampler_spec(spec: StudySpec, label: str):
    return next(s for s in spec.samplers if s.label == label)


def sampler_cases(spec: StudySpec, label: str, split: str) -> int:
    """How many cases of ``split`` the sampler ``label`` runs on (its ``max_cases`` caps every split)."""
    sampler = _sampler_spec(spec, label)
    n = split_size(spec, split)
    return n if sampler.max_cases is None else min(n, sampler.max_cases)


def case_group(spec: StudySpec, label: str, split: str, index: int) -> tuple[int, ...]:
    """The cases of ``split`` that sampler ``label`` runs in one call with case ``index``: the ``batch_cases``
    consecutive cases ``first .. first + k - 1`` with ``first = k * (index // k)``, cut at the sampler's last case.

    >>> from bayesinv.studies.spec import SamplerSpec, StudySpec
    >>> spec = StudySpec("s", 0, "denoise", 8, 0.1, "phantom-gaussian", (SamplerSpec("d", "ddrm", batch_cases=4),),
    ...                  num_calibration=10, num_test=10)
    >>> case_group(spec, "d", "test", 5), case_group(spec, "d", "test", 9)
    ((4, 5, 6, 7), (8, 9))
    """
    k = _sampler_spec(spec, label).batch_cases
    first = k * (index // k)
    return tuple(range(first, min(first + k, sampler_cases(spec, label, split))))


def group_seed(spec: StudySpec, label: str, split: str, group: tuple[int, ...]) -> int:
    """The seed of one sampler call: :func:`task_seed` of ``(seed, split, index, label)`` for a single case (as
    without batching), of ``(seed, split, "first-last", label)`` for a group of several."""
    where = group[0] if len(group) == 1 else f"{group[0]}-{group[-1]}"
    return task_seed(spec.seed, split, where, label)


def case_path(results: Path, split: str, index: int) -> Path:
    return Path(results) / "cases" / f"{split}-{index:04d}.safetensors"


def result_path(results: Path, label: str, split: str, index: int) -> Path:
    return Path(results) / label / f"{split}-{index:04d}.safetensors"


def _custom(spec: StudySpec, problem: InverseProblem | None):
    """A description of ``problem`` when it is not the one the spec builds (part of every hash), else None."""
    if problem is None or any(p is problem for (built, _), p in _PROBLEMS.items() if built == repr(spec)):
        return None
    # an object's default repr holds its address, which differs between runs: keep the rest
    return json.loads(re.sub(r" at 0x[0-9a-fA-F]+", "", json.dumps(problem.describe(), default=repr)))


def _case_hash(spec: StudySpec, split: str, problem: InverseProblem | None = None) -> str:
    return store.case_provenance(spec, split, split_size(spec, split), _custom(spec, problem))["hash"]


def _result_provenance(spec: StudySpec, label: str, split: str, index: int, problem=None) -> dict:
    """:func:`~bayesinv.studies.store.result_provenance`, plus the case group when the case runs with others
    (its draws depend on the group: module docstring); a case run alone has exactly the unbatched provenance."""
    provenance = store.result_provenance(spec, label, split, index, _case_hash(spec, split, problem))
    group = case_group(spec, label, split, index)
    if len(group) == 1:
        return provenance
    parts = {k: v for k, v in provenance.items() if k != "hash"}
    parts["case_group"] = list(group)
    return {**parts, "hash": store.fingerprint(parts)}


def result_problem(results: Path, spec: StudySpec, label: str, split: str, index: int,
                   problem: InverseProblem | None = None) -> str | None:
    """None if the result of ``(label, split, index)`` is complete and belongs to ``spec``, else why not."""
    sampler = _sampler_spec(spec, label)
    expected = _result_provenance(spec, label, split, index, problem)["hash"]
    return store.verify_result(result_path(results, label, split, index), expected, sampler.num_samples)


def is_done(results: Path, label: str, split: str, index: int, *, spec: StudySpec,
            problem: InverseProblem | None = None) -> bool:
    """A result is done when its tensors and metadata are complete and record the hash ``spec`` gives."""
    return result_problem(results, spec, label, split, index, problem) is None


def _draw_images(spec: StudySpec, problem: InverseProblem, split: str, n: int):
    """``(images (n,1,H,W), lesion masks, has_lesion, audit centres)`` of one split."""
    from bayesinv.data import phantom_dataset

    family = spec.ood_family if split == "ood" else spec.family
    size = spec.image_size
    if family == "prior":
        gen = torch.Generator().manual_seed(task_seed(spec.seed, split, "prior-draws"))
        images = problem.prior.sample_n(n, generator=gen).reshape(n, 1, size, size)
        centres = torch.full((n, 2), (size - 1) / 2)
        return images, torch.zeros_like(images, dtype=torch.bool), torch.zeros(n, dtype=torch.bool), centres
    if family == "images":
        from bayesinv.data import images as image_sets

        images = image_sets.load_images(size=size)[:n]
        if images.shape[0] < n:
            raise StudySpecError(f"study spec: 'data.num_ood' = {n} but bayesinv.data.images ships "
                                 f"{images.shape[0]} images")
        centres = torch.full((n, 2), (size - 1) / 2)
        return images, torch.zeros_like(images, dtype=torch.bool), torch.zeros(n, dtype=torch.bool), centres
    batch = phantom_dataset("ood" if split == "ood" else split, n, size, seed=spec.seed,
                            lesion_prob=spec.lesion_prob, family=family)
    return batch.images, batch.lesion_masks, batch.has_lesion, batch.audit_centers


def _write_cases(spec: StudySpec, problem: InverseProblem, results: Path, custom: InverseProblem | None) -> None:
    """Write every case file that is missing, broken or stale (a whole split is drawn at once, as a fresh run
    draws it, and only the bad files are replaced)."""
    shape = [1, spec.image_size, spec.image_size]
    for split in splits(spec):
        n = split_size(spec, split)
        expected = _case_hash(spec, split, custom)
        bad = {i: why for i in range(n) if (why := store.verify_case(case_path(results, split, i), expected,
                                                                       shape)) is not None}
        if not bad:
            continue
        _log_redo("case", {case_path(results, split, i): why for i, why in bad.items()})
        images, masks, has_lesion, centres = _draw_images(spec, problem, split, n)
        for i in sorted(bad):
            truth = images[i : i + 1].double()
            gen = torch.Generator().manual_seed(task_seed(spec.seed, split, i, "y"))
            y = problem.simulate(truth, generator=gen)
            tensors = {"truth": truth[0], "lesion_mask": masks[i], "has_lesion": has_lesion[i : i + 1],
                       "audit_center": centres[i].double()}
            tensors.update(_complex_safe("y", y[0]))
            store.atomic_save_tensors(tensors, case_path(results, split, i), {store.PROVENANCE_KEY: expected})


def _log_redo(kind: str, bad: dict[Path, str]) -> None:
    """Name files that exist but do not verify (missing ones are just work to do)."""
    present = {path: why for path, why in bad.items() if why != "missing"}
    for path, why in list(present.items())[:5]:
        LOG.warning("recomputing %s %s: %s", kind, path, why)
    if len(present) > 5:
        LOG.warning("recomputing %d more %s files that are stale or broken", len(present) - 5, kind)


def _complex_safe(name: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    if value.is_complex():
        return {name + "_real": value.real.contiguous(), name + "_imag": value.imag.contiguous()}
    return {name: value.contiguous()}


def load_case(results: Path, split: str, index: int) -> dict:
    """Read a case: ``truth (C,H,W)``, ``y``, ``lesion_mask``, ``has_lesion`` (bool), ``audit_center (2,)``."""
    data: dict = load_file(str(case_path(results, split, index)))
    if "y_real" in data:
        data["y"] = torch.complex(data.pop("y_real"), data.pop("y_imag"))
    data["has_lesion"] = bool(data["has_lesion"][0])
    return data


def run_sampler(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                generator: torch.Generator, options: dict, progress: bool = False) -> Posterior:
    """:func:`bayesinv.builders.run_sampler`, reporting an unknown sampler or option as a :class:`StudySpecError`."""
    check_sampler_options(name, options)
    return builders.run_sampler(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                                options=options, progress=progress)


def _in_prior_dtype(problem: InverseProblem, y: torch.Tensor) -> torch.Tensor:
    """Cast ``y`` to the precision of a network prior (cases are stored in float64; a float32 network
    would otherwise meet float64 iterates). Analytic priors keep float64."""
    network = getattr(problem.prior, "network", None)
    if network is None:
        return y
    real = next(network.parameters()).dtype
    if y.is_complex():
        return y.to(torch.complex64 if real == torch.float32 else torch.complex128)
    return y.to(real)


def _uninterrupted(sampler, call: Callable[[], list[Posterior]]) -> list[Posterior]:
    """``call()``; a run cut short by Ctrl-C (a chunked sampler returns the finished chains with an "interrupted"
    warning) raises ``KeyboardInterrupt`` instead of returning a partial result."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        posts = call()
    interrupted = False
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and str(w.message).startswith("interrupted"):
            interrupted = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for post in posts:
        chains = 1 if post.point_estimate else sampler.num_samples
        if interrupted or post.samples.shape[0] != chains:
            raise KeyboardInterrupt(f"{sampler.label}: {post.samples.shape[0]} of {chains} chains finished; "
                                    "nothing was saved")
    return posts


def _sample_whole(sampler, problem: InverseProblem, y: torch.Tensor, seed: int) -> Posterior:
    """Run the sampler on one case (:func:`_uninterrupted`: Ctrl-C returns nothing)."""
    return _uninterrupted(sampler, lambda: [run_sampler(
        sampler.sampler, problem, y, num_samples=sampler.num_samples, steps=sampler.steps,
        generator=torch.Generator().manual_seed(seed), options=sampler.options)])[0]


def _sample_group(sampler, problem: InverseProblem, y: torch.Tensor, seed: int) -> list[Posterior]:
    """Run the sampler on the ``G`` cases ``y: (G, *out_shape)`` in one call (:func:`_uninterrupted`)."""
    check_sampler_options(sampler.sampler, sampler.options)
    try:
        builders.case_batching(sampler.sampler)
    except ValueError as exc:
        raise StudySpecError(f"'samplers.{sampler.label}.batch_cases' = {sampler.batch_cases}: {exc}") from None
    posts = _uninterrupted(sampler, lambda: builders.run_sampler_cases(
        sampler.sampler, problem, y, num_samples=sampler.num_samples, steps=sampler.steps,
        generator=torch.Generator().manual_seed(seed), options=sampler.options))
    if len(posts) != y.shape[0]:
        raise KeyboardInterrupt(f"{sampler.label}: {len(posts)} of {y.shape[0]} cases finished; nothing was saved")
    return posts


def run_task(spec: StudySpec, results: Path, label: str, split: str, index: int,
             problem: InverseProblem | None = None, device: str | None = None) -> str:
    """Run one (sampler, case) task unless its result verifies; returns ``"done"`` or ``"skipped"``.

    With ``batch_cases > 1`` the task is the case's whole group (:func:`case_group`): one sampler call for
    every case of the group, writing the results of those that do not verify (``"skipped"`` when all do).
    ``device``: where the operator, the prior and the chains live (the spec's problem is built there); the
    case is read from disk and the samples are written back from the CPU, so the files are the same.
    """
    sampler = _sampler_spec(spec, label)
    group = case_group(spec, label, split, index)
    provenance = {i: _result_provenance(spec, label, split, i, problem) for i in group}
    pending = {}
    for i in group:
        path = result_path(results, label, split, i)
        why = store.verify_result(path, provenance[i]["hash"], sampler.num_samples)
        if why is not None:
            pending[i] = why
            if why != "missing":
                LOG.warning("recomputing %s: %s", path, why)
    if not pending:
        return "skipped"
    problem = study_problem(spec, device) if problem is None else problem
    seed = group_seed(spec, label, split, group)
    y = _in_prior_dtype(problem, torch.stack([load_case(results, split, i)["y"] for i in group]))
    y = y if device is None else y.to(device)
    if len(group) == 1:
        posts = [_sample_whole(sampler, problem, y, seed)]
    else:
        posts = _sample_group(sampler, problem, y, seed)
    for i, post in zip(group, posts, strict=True):
        if i in pending:
            post.samples = post.samples.cpu()
            post.seed = seed
            store.save_result(post, result_path(results, label, split, i), provenance[i])
    return "done"


def study_tasks(spec: StudySpec, labels: Iterable[str] | None = None) -> list[tuple[str, str, int]]:
    """Every ``(label, split, index)`` of the study (for the given sampler labels), in a fixed order."""
    wanted = {s.label for s in spec.samplers} if labels is None else set(labels)
    unknown = wanted - {s.label for s in spec.samplers}
    if unknown:
        raise StudySpecError(f"unknown sampler label(s) {sorted(unknown)}; the study has "
                             f"{[s.label for s in spec.samplers]}")
    return [(s.label, split, i) for s in spec.samplers if s.label in wanted for split in splits(spec)
            for i in range(sampler_cases(spec, s.label, split))]


def run_study(spec: StudySpec, out: str | os.PathLike | None = None, *, backend: str = "local", workers: int = 1,
              progress: bool = True, labels: Iterable[str] | None = None, problem: InverseProblem | None = None,
              on_task: Callable[[str, str, int, str], None] | None = None, recompute: bool = True,
              device: str | torch.device | None = None) -> Path:
    """Run every (case x sampler) of ``spec`` without a verified result; returns the results folder.

    Parameters
    ----------
    spec : the study (see :func:`~bayesinv.studies.spec.load_study`).
    out : results folder (default ``<study folder>/results``).
    backend : ``"local"`` (this process, or ``workers`` local processes) or ``"ray"`` (needs the
        ``ray`` extra; tasks go to the connected cluster). Results are identical for the same seed.
    progress : a tqdm bar over the remaining tasks, with rate and ETA.
    labels : run only these sampler labels.
    problem : use this :class:`InverseProblem` instead of building one from the spec (custom Pyro
        models; serial local backend only).
    on_task : called as ``on_task(label, split, index, status)`` after each task (serial backend).
    recompute : compute again the files that are stale (another spec, prior or version) or broken
        (truncated, cut short); with ``False`` such files raise
        :class:`~bayesinv.studies.store.StaleResultsError` before any work is done.
    device : where the samplers run (e.g. ``"cuda"``): the operator, the prior and the chains move there on
        every backend; cases are drawn and results written on the CPU. Not part of any hash (a device changes
        only rounding, like the thread count; see :mod:`~bayesinv.studies.store`), so a study computed on one
        device resumes on another. Refused with a custom ``problem=`` (move that problem yourself).

    The results folder is locked for the run (:func:`~bayesinv.studies.lock.study_lock`): a second run on
    it raises :class:`~bayesinv.studies.lock.StudyLocked` naming the process that holds it.
    """
    if device is not None:
        from bayesinv._validation import check_device

        device = check_device(device)
        if problem is not None:
            raise StudySpecError("device= applies to the problem the spec builds; move a custom problem= yourself "
                                 "(problem.operator.to(device), problem.prior.to(device)) and leave device unset")
        device = str(device)  # a name, for worker processes and Ray; "cpu" takes the same path as "cuda"
    results = Path(out) if out is not None else spec.folder / "results"
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"cannot write study results to {results}: {exc.strerror}") from exc
    if problem is not None and (backend != "local" or workers > 1):
        raise StudySpecError("a custom problem= runs only on the serial local backend (workers=1)")
    tasks = study_tasks(spec, labels)
    for sampler in spec.samplers:  # before any work: a sample count that cannot fit is refused with an estimate
        what = f"'samplers.{sampler.label}.num_samples' ="
        if sampler.batch_cases > 1:
            what = f"'samplers.{sampler.label}.num_samples' x 'batch_cases' ({sampler.batch_cases}) ="
        try:
            check_memory(sampler.num_samples * sampler.batch_cases, spec.image_size, what)
        except ValueError as exc:
            raise StudySpecError(f"study spec {spec.path}: {exc}") from None
    with study_lock(results):
        store.clean_tmp(results)
        if not recompute:
            _refuse_stale(spec, results, tasks, problem)
        local_problem = problem if problem is not None else study_problem(spec)
        _write_cases(spec, local_problem, results, problem)
        store.atomic_write_text(results / "study.json", json.dumps(
            {"name": spec.name, "spec": str(spec.path), "version": _version()}, indent=2))
        todo = [t for t in tasks if not is_done(results, *t, spec=spec, problem=problem)]
        calls = _group_calls(spec, todo)
        bar = tqdm(total=len(todo), desc=f"study {spec.name}", unit="task", disable=not progress)

        def finished(label: str, split: str, index: int, status: str) -> None:
            """One sampler call done: every case of it counts (the bar's rate and time left are per case)."""
            members = calls[(label, split, index)]
            for i in members:
                if on_task is not None:
                    on_task(label, split, i, status)
            bar.set_postfix_str(f"{label} {split}-{index}", refresh=False)
            bar.update(len(members))

        try:
            # on a device, the serial backend's tasks get the spec's problem built there (cases stay CPU-drawn)
            task_problem = local_problem if device is None else study_problem(spec, device)
            run_tasks(run_task, spec, results, list(calls), backend=backend, workers=workers, problem=task_problem,
                      on_task=finished, device=device)
        finally:
            bar.close()
    return results


def _group_calls(spec: StudySpec, todo: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], list[int]]:
    """The sampler calls that compute ``todo``: ``(label, split, first case of the group) -> [its cases to do]``
    in the order of ``todo`` (one call per case when ``batch_cases = 1``)."""
    calls: dict[tuple[str, str, int], list[int]] = {}
    for label, split, index in todo:
        calls.setdefault((label, split, case_group(spec, label, split, index)[0]), []).append(index)
    return calls


def _version() -> str:
    import bayesinv

    return bayesinv.__version__


def _refuse_stale(spec: StudySpec, results: Path, tasks, problem) -> None:
    """Raise :class:`~bayesinv.studies.store.StaleResultsError` if any case or result file on disk does not
    belong to ``spec`` (missing files are fine: they are work still to do)."""
    shape = [1, spec.image_size, spec.image_size]
    bad = {}
    for split in splits(spec):
        expected = _case_hash(spec, split, problem)
        for i in range(split_size(spec, split)):
            why = store.verify_case(case_path(results, split, i), expected, shape)
            if why not in (None, "missing"):
                bad[case_path(results, split, i)] = why
    for task in tasks:
        why = result_problem(results, spec, *task, problem)
        if why not in (None, "missing"):
            bad[result_path(results, *task)] = why
    if bad:
        path, why = next(iter(bad.items()))
        raise store.StaleResultsError(f"{len(bad)} file(s) in {results} do not match the spec (first: {path}: "
                                      f"{why}); run without --no-recompute to compute them again")
