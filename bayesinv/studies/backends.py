"""Where study tasks run: this process, local worker processes, or a Ray cluster.

Every backend calls the task function it is given (the study runner passes
:func:`bayesinv.studies.runner.run_task`, whose randomness depends only on ``(study seed, split, index,
label)``); the function must be defined at module level, so that worker processes and Ray can import it
by name. Results are therefore identical across backends when every process runs torch with the same
number of intra-op threads. Ray starts its workers with ``OMP_NUM_THREADS=1``: a driver (serial backend)
on one thread (``OMP_NUM_THREADS=1`` or ``torch.set_num_threads(1)``) gets the Ray results bit for bit; a
driver on more threads rounds multi-threaded reductions differently, and results agree to 1e-12 absolute
(measured: at most 2.2e-13 on an 8x8 deblurring study; ``tests/integrations/test_ray.py`` checks both on
a real local Ray cluster).

Results are written to the study's ``results`` folder by whichever process runs a task, so a Ray
cluster of more than one node needs that folder on a filesystem shared by all nodes (NFS or
similar) at the same path; a one-node cluster (``ray.init()`` here, the default) needs nothing.
Ray is an optional extra (``pip install 'bayesinv[ray]'``); asking for it without it installed
raises :class:`~bayesinv.studies.spec.StudySpecError` saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from bayesinv.studies.spec import StudySpec, StudySpecError

__all__ = ["BACKENDS", "run_tasks"]

BACKENDS = ("local", "ray")


def _describe(bar, task) -> None:
    bar.set_postfix_str(f"{task[0]} {task[1]}-{task[2]}", refresh=False)


def run_tasks(run_task: Callable[..., str], spec: StudySpec, results: Path, tasks: Sequence[tuple[str, str, int]],
              *, backend: str = "local", workers: int = 1, problem=None, bar=None,
              on_task: Callable[[str, str, int, str], None] | None = None, device: str | None = None) -> None:
    """Run ``tasks`` (``(label, split, index)`` triples) on ``backend``; update ``bar`` as they finish.

    Each task runs as ``run_task(spec, results, label, split, index)`` (plus ``problem=problem`` on the serial
    local backend, and ``device=device`` when a device is given: every process samples on it) and returns its
    status (``"done"`` or ``"skipped"``), which ``on_task`` receives.
    """
    extra = {} if device is None else {"device": device}
    if backend not in BACKENDS:
        raise StudySpecError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    if workers < 1:
        raise StudySpecError(f"workers must be >= 1, got {workers}")

    def finished(task, status):
        if on_task is not None:
            on_task(*task, status)
        if bar is not None:
            _describe(bar, task)
            bar.update()

    if backend == "local" and workers == 1:
        for task in tasks:
            finished(task, run_task(spec, results, *task, problem=problem, **extra))
    elif backend == "local":
        # spawn, not fork: forking a process whose torch/JAX thread pools are running can deadlock the child
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_task, spec, results, *task, **extra): task for task in tasks}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    else:
        try:
            import ray
        except ImportError as exc:
            raise StudySpecError("backend 'ray' needs the optional extra: pip install 'bayesinv[ray]'") from exc
        if not ray.is_initialized():
            ray.init()
        remote = ray.remote(run_task)
        refs = {remote.remote(spec, results, *task, **extra): task for task in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            finished(refs[done[0]], ray.get(done[0]))
