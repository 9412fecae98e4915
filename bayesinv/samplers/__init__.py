"""Posterior samplers: plain functions ``sample_x(problem, y, *, num_samples, steps, generator, ...) -> Posterior``.

Every sampler draws its chains as a batch, takes an explicit ``torch.Generator``, accepts
``batch_size``, ``progress`` and ``callback(step, x_t, x0_hat)``, raises
:class:`~bayesinv.errors.SamplerDivergence` at the first non-finite iterate (or one far outside the
prior's range) and returns a :class:`~bayesinv.posterior.Posterior`. Each sampler file holds a step function
over a NamedTuple state; the loop around it (chunking, progress, Ctrl-C, divergence checks) is
:mod:`bayesinv.samplers._driver`, run the same way for every sampler.

``SAMPLERS`` (:mod:`bayesinv.samplers.registry`) maps a registry name (used by the CLI and the study runner)
to the sampler function; ``sample_gibbs`` wraps them and is not in it. ``CASE_SAMPLERS`` maps the names of the
samplers that also run several cases per call (``y: (G, *out_shape)``, one Posterior per case) to those
functions (``sample_ddrm_cases``, ``sample_dps_cases``).

>>> sorted(SAMPLERS)[:3]
['annealed_langevin', 'ddrm', 'dirac']
"""

from bayesinv.samplers.ddrm import sample_ddrm, sample_ddrm_cases
from bayesinv.samplers.dirac import sample_dirac
from bayesinv.samplers.dps import sample_dps, sample_dps_cases
from bayesinv.samplers.gibbs import sample_gibbs
from bayesinv.samplers.annealed_langevin import sample_annealed_langevin
from bayesinv.samplers.langevin import sample_mala, sample_pnp_ula, sample_ula
from bayesinv.samplers.registry import CASE_SAMPLERS, SAMPLERS
from bayesinv.samplers.score_sde import sample_score_sde
from bayesinv.samplers.smc import sample_smc
from bayesinv.samplers.split_gibbs import sample_split_gibbs
from bayesinv.samplers.split_gibbs_smc import sample_split_gibbs_smc

__all__ = ["SAMPLERS", "CASE_SAMPLERS", "sample_dps", "sample_ddrm", "sample_dps_cases", "sample_ddrm_cases",
           "sample_score_sde", "sample_annealed_langevin", "sample_ula", "sample_pnp_ula", "sample_mala", "sample_smc",
           "sample_dirac", "sample_gibbs", "sample_split_gibbs", "sample_split_gibbs_smc"]
