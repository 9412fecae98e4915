"""``SAMPLERS``: every posterior sampler by registry name (used by the CLI, the study runner and Gibbs).

``CASE_SAMPLERS``: the samplers whose chains are independent given ``y`` and that run several cases (``y`` of
shape ``(G, *out_shape)``) in one call, one network call per step for all of them, returning one Posterior per
case; the study runner's ``batch_cases`` uses them. The other samplers refuse ``y`` with more than one
measurement, naming themselves.

The registry lives apart from the package ``__init__`` so that a sampler which calls other samplers by name
(:func:`~bayesinv.samplers.gibbs.sample_gibbs`) can import it without an import circle.

>>> sorted(SAMPLERS)[:3]
['annealed_langevin', 'ddrm', 'dirac']
"""

from collections.abc import Callable

from bayesinv.posterior import Posterior
from bayesinv.samplers.ddrm import sample_ddrm, sample_ddrm_cases
from bayesinv.samplers.dirac import sample_dirac
from bayesinv.samplers.dps import sample_dps, sample_dps_cases
from bayesinv.samplers.annealed_langevin import sample_annealed_langevin
from bayesinv.samplers.langevin import sample_mala, sample_pnp_ula, sample_ula
from bayesinv.samplers.score_sde import sample_score_sde
from bayesinv.samplers.smc import sample_smc
from bayesinv.samplers.split_gibbs import sample_split_gibbs
from bayesinv.samplers.split_gibbs_smc import sample_split_gibbs_smc

__all__ = ["SAMPLERS", "CASE_SAMPLERS"]

SAMPLERS: dict[str, Callable[..., Posterior]] = {
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
    "split_gibbs_smc": sample_split_gibbs_smc,
}
# sample_gibbs (images + scalar latents jointly) wraps the samplers above and needs a problem with latents,
# so it is exported by bayesinv.samplers but not in the registry that studies and the CLI draw from.

CASE_SAMPLERS: dict[str, Callable[..., list[Posterior]]] = {
    "ddrm": sample_ddrm_cases,
    "dps": sample_dps_cases,
}
