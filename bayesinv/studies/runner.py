"""Run a study: every (test case x sampler) once, one result file per case, resumable.

Layout of a results folder (default ``<study folder>/results``)::

    cases/<split>-<index>.safetensors        truth, measurement y, lesion mask (+ .json)
    <sampler label>/<split>-<index>.safetensors   the Posterior (+ .json)

Files are written atomically (temporary file + rename), so an interrupted study resumes where it
stopped without losing or repeating work. Each task draws from its own generator seeded by
``crc32(study seed, split, index, label)``, so results do not depend on the backend or the order.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from bayesinv.noise import Gaussian
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.studies.spec import StudySpec, StudySpecError

__all__ = ["run_study", "build_problem", "resolve_prior", "case_path", "result_path", "load_case", "task_seed",
           "run_sampler", "SPLITS"]

SPLITS = ("calibration", "test")


def task_seed(*parts) -> int:
    """A stable 31-bit seed from the given parts (``zlib.crc32`` of their text)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def resolve_prior(name: str, image_size: int = 32):
    """A prior by name: ``phantom-gaussian`` (exact Gaussian fit to training phantoms) or ``models/<name>``."""
    if name == "phantom-gaussian":
        from bayesinv.priors.gaussian import GaussianPrior
        from bayesinv.data import phantom_dataset

        data = phantom_dataset("train", 4000, image_size).images.double().reshape(4000, -1)
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


def _results_dir(spec: StudySpec, out: str | os.PathLike | None) -> Path:
    return Path(out) if out is not None else spec.folder / "results"


def case_path(results: Path, split: str, index: int) -> Path:
    return results / "cases" / f"{split}-{index:04d}.safetensors"


def result_path(results: Path, label: str, split: str, index: int) -> Path:
    return results / label / f"{split}-{index:04d}.safetensors"


def _split_size(spec: StudySpec, split: str) -> int:
    return spec.num_calibration if split == "calibration" else spec.num_test


def _write_cases(spec: StudySpec, problem: InverseProblem, results: Path) -> None:
    from bayesinv.data import phantom_dataset

    for split in SPLITS:
        n = _split_size(spec, split)
        if all(case_path(results, split, i).exists() for i in range(n)):
            continue
        batch = phantom_dataset(split, n, spec.image_size, seed=spec.seed, lesion_prob=spec.lesion_prob,
                                family=spec.family)
        for i in range(n):
            path = case_path(results, split, i)
            if path.exists():
                continue
            truth = batch.images[i : i + 1].double()
            y = problem.simulate(truth, generator=torch.Generator().manual_seed(task_seed(spec.seed, split, i, "y")))
            tensors = {"truth": truth[0], "lesion_mask": batch.lesion_masks[i], "has_lesion": batch.has_lesion[i : i + 1]}
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


def load_case(results: Path, split: str, index: int) -> dict[str, torch.Tensor]:
    """Read a case: ``truth (C,H,W)``, ``y``, ``lesion_mask``, ``has_lesion``."""
    data = load_file(str(case_path(results, split, index)))
    if "y_real" in data:
        data["y"] = torch.complex(data.pop("y_real"), data.pop("y_imag"))
    data["has_lesion"] = bool(data["has_lesion"][0])
    return data


def run_sampler(name: str, problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None,
                generator: torch.Generator, options: dict, progress: bool = False) -> Posterior:
    """Call a diffusion sampler or a baseline by registry name with the uniform study options."""
    from bayesinv.samplers import SAMPLERS

    try:
        from bayesinv.samplers.baselines import BASELINES
    except ImportError:  # baselines not installed in this build
        BASELINES = {}
    if name in SAMPLERS:
        kwargs = dict(num_samples=num_samples, generator=generator, progress=progress, **options)
        if steps is not None:
            kwargs["steps"] = steps
        return SAMPLERS[name](problem, y, **kwargs)
    if name in BASELINES:
        return BASELINES[name](problem, y, progress=progress, **options)
    raise StudySpecError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS) + sorted(BASELINES)}")


def _run_task(spec: StudySpec, results: Path, label: str, split: str, index: int, problem=None) -> str:
    out = result_path(results, label, split, index)
    if out.exists() and out.with_name(out.name + ".json").exists():
        return "skipped"
    if problem is None:
        problem = build_problem(spec, resolve_prior(spec.prior, spec.image_size))
    sampler = next(s for s in spec.samplers if s.label == label)
    case = load_case(results, split, index)
    seed = task_seed(spec.seed, split, index, label)
    post = run_sampler(sampler.sampler, problem, case["y"].unsqueeze(0), num_samples=sampler.num_samples,
                       steps=sampler.steps, generator=torch.Generator().manual_seed(seed), options=sampler.options)
    post.seed = seed
    post.save(out)
    return "done"


def _tasks(spec: StudySpec) -> list[tuple[str, str, int]]:
    return [(s.label, split, i) for s in spec.samplers for split in SPLITS for i in range(_split_size(spec, split))]


def run_study(spec: StudySpec, out: str | os.PathLike | None = None, *, backend: str = "local", workers: int = 1,
              progress: bool = True, labels: Iterable[str] | None = None,
              on_task: Callable[[str, str, int, str], None] | None = None) -> Path:
    """Run every (case x sampler) of ``spec`` that has no result yet; returns the results folder.

    backend : ``"local"`` (this process, or ``workers`` local processes) or ``"ray"`` (needs the
        ``ray`` extra; tasks go to the connected cluster). Results are identical for the same seed.
    """
    results = _results_dir(spec, out)
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"cannot write study results to {results}: {exc.strerror}") from exc
    prior = resolve_prior(spec.prior, spec.image_size)
    problem = build_problem(spec, prior)
    _write_cases(spec, problem, results)
    (results / "study.json").write_text(json.dumps({"name": spec.name, "spec": str(spec.path)}, indent=2))
    wanted = set(labels) if labels is not None else {s.label for s in spec.samplers}
    unknown = wanted - {s.label for s in spec.samplers}
    if unknown:
        raise StudySpecError(f"unknown sampler label(s) {sorted(unknown)}; the study has {[s.label for s in spec.samplers]}")
    todo = [t for t in _tasks(spec) if t[0] in wanted and not result_path(results, *t).exists()]
    bar = tqdm(total=len(todo), desc=f"study {spec.name}", unit="case", disable=not progress)
    try:
        if backend == "local" and workers <= 1:
            for label, split, index in todo:
                bar.set_postfix_str(f"{label} {split}-{index}")
                status = _run_task(spec, results, label, split, index, problem)
                if on_task:
                    on_task(label, split, index, status)
                bar.update()
        elif backend == "local":
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_run_task, spec, results, *t) for t in todo]
                for fut in futures:
                    fut.result()
                    bar.update()
        elif backend == "ray":
            try:
                import ray
            except ImportError as exc:
                raise StudySpecError("backend 'ray' needs the optional extra: pip install 'bayesinv[ray]'") from exc
            remote = ray.remote(_run_task)
            refs = [remote.remote(spec, results, *t) for t in todo]
            for ref in refs:
                ray.get(ref)
                bar.update()
        else:
            raise StudySpecError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    finally:
        bar.close()
    return results
