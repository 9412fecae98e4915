"""Run a study: every (test case x sampler) once, one result file per case, resumable.

Layout of a results folder (default ``<study folder>/results``)::

    cases/<split>-<index>.safetensors        truth, measurement y, lesion mask, audit centre
    <sampler label>/<split>-<index>.safetensors   the Posterior (+ .json)

Splits: ``calibration`` (conformal recalibration), ``test`` (every diagnostic) and, when
``data.num_ood > 0``, ``ood`` (out-of-distribution images, audited only). Files are written atomically
(temporary file + rename) and a result counts as done only when both its tensor and metadata files
exist, so an interrupted study resumes where it stopped without losing or repeating work. Each task
draws from its own generator seeded by ``crc32(study seed, split, index, label)``, so results do not
depend on the backend, the number of workers or the order of the tasks.
"""

from __future__ import annotations

import inspect
import json
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from bayesinv.noise import Gaussian
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.studies.backends import run_tasks
from bayesinv.studies.spec import StudySpec, StudySpecError

__all__ = ["run_study", "build_problem", "resolve_prior", "case_path", "result_path", "load_case", "task_seed",
           "run_sampler", "splits", "sampler_cases", "is_done", "SPLITS"]

SPLITS = ("calibration", "test")


def task_seed(*parts) -> int:
    """A stable 31-bit seed from the given parts (``zlib.crc32`` of their text).

    >>> task_seed(0, "test", 3, "dps") == task_seed(0, "test", 3, "dps")
    True
    """
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def resolve_prior(name: str, image_size: int = 32):
    """A prior by name: ``phantom-gaussian`` (exact Gaussian fit to training phantoms), ``phantom-lesion-mixture``
    (:meth:`~bayesinv.priors.lesion_mixture.LesionMixturePrior.from_phantoms`: exact, with lesions) or ``models/<name>``."""
    if name == "phantom-lesion-mixture":
        from bayesinv.priors.lesion_mixture import LesionMixturePrior

        return LesionMixturePrior.from_phantoms(image_size)
    if name == "phantom-gaussian":
        from bayesinv.data import phantom_dataset
        from bayesinv.priors.gaussian import GaussianPrior

        num = 4000
        data = phantom_dataset("train", num, image_size).images.double().reshape(num, -1)
        mean = data.mean(0)
        cov = torch.cov(data.T) + 1e-4 * torch.eye(data.shape[1], dtype=torch.float64)
        return GaussianPrior(mean.reshape(1, image_size, image_size), cov)
    from bayesinv.priors.hub import load_prior

    return load_prior(name)


def build_problem(spec: StudySpec, prior=None) -> InverseProblem:
    """The study's inverse problem (operator + Gaussian noise + prior)."""
    from bayesinv.operators import make_operator

    shape = (1, spec.image_size, spec.image_size)
    try:
        operator = make_operator(spec.operator, shape, seed=spec.seed, **spec.operator_options)
    except TypeError as exc:
        raise StudySpecError(f"study spec: bad 'problem.operator_options' for {spec.operator!r}: {exc}") from exc
    return InverseProblem(operator, Gaussian(spec.noise_sigma), prior, name=f"{spec.operator}-{spec.image_size}")


_PROBLEMS: dict[str, InverseProblem] = {}


def study_problem(spec: StudySpec) -> InverseProblem:
    """``build_problem(spec, resolve_prior(...))``, cached per process (workers reuse it across tasks)."""
    key = repr(spec)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = build_problem(spec, resolve_prior(spec.prior, spec.image_size))
    return _PROBLEMS[key]


def splits(spec: StudySpec) -> tuple[str, ...]:
    """The study's splits: calibration, test and (if ``num_ood > 0``) ood."""
    return SPLITS + (("ood",) if spec.num_ood > 0 else ())


def split_size(spec: StudySpec, split: str) -> int:
    return {"calibration": spec.num_calibration, "test": spec.num_test, "ood": spec.num_ood}[split]


def sampler_cases(spec: StudySpec, label: str, split: str) -> int:
    """How many cases of ``split`` the sampler ``label`` runs on (its ``max_cases`` caps every split)."""
    sampler = next(s for s in spec.samplers if s.label == label)
    n = split_size(spec, split)
    return n if sampler.max_cases is None else min(n, sampler.max_cases)


def case_path(results: Path, split: str, index: int) -> Path:
    return Path(results) / "cases" / f"{split}-{index:04d}.safetensors"


def result_path(results: Path, label: str, split: str, index: int) -> Path:
    return Path(results) / label / f"{split}-{index:04d}.safetensors"


def is_done(results: Path, label: str, split: str, index: int) -> bool:
    """A result is complete when its tensors and its metadata have both been renamed into place."""
    path = result_path(results, label, split, index)
    return path.exists() and path.with_name(path.name + ".json").exists()


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


def _write_cases(spec: StudySpec, problem: InverseProblem, results: Path) -> None:
    for split in splits(spec):
        n = split_size(spec, split)
        if all(case_path(results, split, i).exists() for i in range(n)):
            continue
        images, masks, has_lesion, centres = _draw_images(spec, problem, split, n)
        for i in range(n):
            path = case_path(results, split, i)
            if path.exists():
                continue
            truth = images[i : i + 1].double()
            gen = torch.Generator().manual_seed(task_seed(spec.seed, split, i, "y"))
            y = problem.simulate(truth, generator=gen)
            tensors = {"truth": truth[0], "lesion_mask": masks[i], "has_lesion": has_lesion[i : i + 1],
                       "audit_center": centres[i].double()}
            tensors.update(_complex_safe("y", y[0]))
            _atomic_save(tensors, path)


def _complex_safe(name: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    if value.is_complex():
        return {name + "_real": value.real.contiguous(), name + "_imag": value.imag.contiguous()}
    return {name: value.contiguous()}


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def load_case(results: Path, split: str, index: int) -> dict:
    """Read a case: ``truth (C,H,W)``, ``y``, ``lesion_mask``, ``has_lesion`` (bool), ``audit_center (2,)``."""
    data: dict = load_file(str(case_path(results, split, index)))
    if "y_real" in data:
        data["y"] = torch.complex(data.pop("y_real"), data.pop("y_imag"))
    data["has_lesion"] = bool(data["has_lesion"][0])
    return data


def run_sampler(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                generator: torch.Generator, options: dict, progress: bool = False) -> Posterior:
    """Call a sampler, ``"exact"`` or a baseline by registry name with the uniform study options."""
    from bayesinv.samplers import SAMPLERS
    from bayesinv.studies.exact import sample_exact

    try:
        from bayesinv.samplers.baselines import BASELINES
    except ImportError:  # baselines not installed in this build
        BASELINES = {}
    registry = {"exact": sample_exact, **BASELINES, **SAMPLERS}
    if name not in registry:
        raise StudySpecError(f"unknown sampler {name!r}; choose one of "
                             f"{sorted(SAMPLERS) + sorted(BASELINES) + ['exact']}")
    _check_options(name, registry[name], options)
    if name == "exact":
        return sample_exact(problem, y, num_samples=num_samples, generator=generator, **options)
    if name in SAMPLERS:
        kwargs = dict(num_samples=num_samples, generator=generator, progress=progress, **options)
        if steps is not None:
            kwargs["steps"] = steps
        return SAMPLERS[name](problem, y, **kwargs)
    return BASELINES[name](problem, y, progress=progress, **options)


def _check_options(name: str, function: Callable, options: dict) -> None:
    """Refuse options the sampler does not take, listing the ones it does (before any work is done)."""
    params = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    fixed = {"problem", "y", "num_samples", "generator", "progress", "steps"}
    unknown = sorted(set(options) - set(params))
    if unknown:
        allowed = ", ".join(k for k, p in params.items() if k not in fixed and p.kind is inspect.Parameter.KEYWORD_ONLY)
        raise StudySpecError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: {allowed}")


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


def run_task(spec: StudySpec, results: Path, label: str, split: str, index: int,
             problem: InverseProblem | None = None) -> str:
    """Run one (sampler, case) task unless its result exists; returns ``"done"`` or ``"skipped"``."""
    if is_done(results, label, split, index):
        return "skipped"
    problem = study_problem(spec) if problem is None else problem
    sampler = next(s for s in spec.samplers if s.label == label)
    case = load_case(results, split, index)
    seed = task_seed(spec.seed, split, index, label)
    post = run_sampler(sampler.sampler, problem, _in_prior_dtype(problem, case["y"].unsqueeze(0)),
                       num_samples=sampler.num_samples,
                       steps=sampler.steps, generator=torch.Generator().manual_seed(seed), options=sampler.options)
    post.seed = seed
    post.save(result_path(results, label, split, index))
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
              on_task: Callable[[str, str, int, str], None] | None = None) -> Path:
    """Run every (case x sampler) of ``spec`` that has no result yet; returns the results folder.

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
    """
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
    local_problem = problem if problem is not None else study_problem(spec)
    _write_cases(spec, local_problem, results)
    (results / "study.json").write_text(json.dumps({"name": spec.name, "spec": str(spec.path)}, indent=2))
    todo = [t for t in tasks if not is_done(results, *t)]
    bar = tqdm(total=len(todo), desc=f"study {spec.name}", unit="task", disable=not progress)
    try:
        run_tasks(spec, results, todo, backend=backend, workers=workers, problem=local_problem, bar=bar,
                  on_task=on_task)
    finally:
        bar.close()
    return results
