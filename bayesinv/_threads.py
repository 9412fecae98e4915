"""Thread defaults for the command line (``bayesinv ...``), applied only where the user chose none.

On a small, shared CPU machine, OpenMP worker threads that spin while waiting (the default
``OMP_WAIT_POLICY`` of GNU OpenMP) compete with every other process for the same cores: one network
forward + backward on 2 threads then varies from 1x to several times its cost
(``python benchmarks/against_deepinv.py --threads``, README "Performance"). The wait policy is read by
the OpenMP runtime when torch is loaded, which happens before any of our code runs, so it cannot be
changed here; the thread count can. :func:`apply_thread_defaults` sets ``torch.set_num_threads`` to
:data:`DEFAULT_THREADS_SPINNING` when the wait policy is the spinning default and to
``min(cpu_count, DEFAULT_THREADS_PASSIVE)`` when the user exported ``OMP_WAIT_POLICY=PASSIVE``, and
does nothing at all when the user set ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` or
``BAYESINV_NUM_THREADS`` (the last one is taken as the thread count). The library itself never calls
it: only the command line does, so a program that imports bayesinv keeps its own settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["apply_thread_defaults", "thread_default", "DEFAULT_THREADS_SPINNING", "DEFAULT_THREADS_PASSIVE"]

#: threads when OpenMP workers spin while waiting (the default wait policy): one, so none spins.
DEFAULT_THREADS_SPINNING = 1
#: at most this many threads when the user exported ``OMP_WAIT_POLICY=PASSIVE``.
DEFAULT_THREADS_PASSIVE = 2

_USER_SET = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def thread_default(environ: Mapping[str, str] | None = None, cpu_count: int | None = None) -> int | None:
    """The thread count :func:`apply_thread_defaults` would set, or ``None`` where the user chose one.

    >>> thread_default({}, cpu_count=8), thread_default({"OMP_WAIT_POLICY": "passive"}, cpu_count=8)
    (1, 2)
    >>> thread_default({"OMP_NUM_THREADS": "4"}) is None, thread_default({"BAYESINV_NUM_THREADS": "3"})
    (True, 3)
    """
    env = os.environ if environ is None else environ
    if "BAYESINV_NUM_THREADS" in env:
        value = env["BAYESINV_NUM_THREADS"]
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"BAYESINV_NUM_THREADS must be a positive integer, got {value!r}")
        return int(value)
    if any(name in env for name in _USER_SET):
        return None
    cpus = max(1, cpu_count if cpu_count is not None else (os.cpu_count() or 1))
    if env.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE":
        return min(cpus, DEFAULT_THREADS_PASSIVE)
    return min(cpus, DEFAULT_THREADS_SPINNING)


def apply_thread_defaults(environ: Mapping[str, str] | None = None) -> int | None:
    """Call ``torch.set_num_threads`` with :func:`thread_default` unless the user chose; returns what was set."""
    threads = thread_default(environ)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return threads
