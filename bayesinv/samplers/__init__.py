"""Posterior samplers: plain functions ``sample_x(problem, y, *, num_samples, steps, generator, ...) -> Posterior``.

Every sampler draws its chains as a batch, takes an explicit ``torch.Generator``, accepts
``batch_size``, ``progress`` and ``callback(step, x_t, x0_hat)``, raises
:class:`~bayesinv.errors.SamplerDivergence` at the first non-finite iterate and returns a
:class:`~bayesinv.posterior.Posterior`. The shared machinery is in :mod:`bayesinv.samplers._common`.

``SAMPLERS`` maps a registry name (used by the CLI and the study runner) to the sampler function.

>>> sorted(SAMPLERS)[:3]
['annealed_langevin', 'ddrm', 'dirac']
"""

from bayesinv.samplers.ddrm import sample_ddrm
from bayesinv.samplers.dirac import sample_dirac
from bayesinv.samplers.dps import sample_dps
from bayesinv.samplers.gibbs import sample_gibbs
from bayesinv.samplers.langevin import sample_annealed_langevin, sample_mala, sample_pnp_ula, sample_ula
from bayesinv.samplers.score_sde import sample_score_sde
from bayesinv.samplers.smc import sample_smc
from bayesinv.samplers.split_gibbs import sample_split_gibbs

__all__ = ["SAMPLERS", "sample_dps", "sample_ddrm", "sample_score_sde", "sample_annealed_langevin", "sample_ula",
           "sample_pnp_ula", "sample_mala", "sample_smc", "sample_dirac", "sample_gibbs",
           "sample_split_gibbs"]

SAMPLERS = {
    "dps": sample_dps,
    "ddrm": sample_ddrm,
    "score_sde": sample_score_sde,
    "annealed_langevin": sample_annealed_langevin,
    "ula": sample_ula,
    "pnp_ula": sample_pnp_ula,
    "mala": sample_mala,
    "smc": sample_smc,
    "dirac": sample_dirac,
    "split_gibbs": sample_split_gibbs,
}
# sample_gibbs (images + scalar latents jointly) wraps the samplers above and needs a problem with latents,
# so it is exported but not in the registry that studies and the CLI draw from.
