"""Posterior samplers: plain functions ``sample_x(problem, y, *, num_samples, steps, generator, ...) -> Posterior``.

``SAMPLERS`` maps a registry name (used by the CLI and the study runner) to the sampler function.
"""

from bayesinv.samplers.dps import sample_dps

__all__ = ["SAMPLERS", "sample_dps"]

SAMPLERS = {
    "dps": sample_dps,
}
