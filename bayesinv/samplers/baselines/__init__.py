"""Deterministic baselines returned as point-mass posteriors: what a diffusion posterior must beat.

Every baseline is ``baseline(problem, y, *, progress=False, **options) -> Posterior`` with one chain
and one draw (``point_estimate=True``), its iterations/NFE, wall time and stopping diagnostics in
``extras``. ``BASELINES`` maps the registry name (CLI, study specs) to the function.

=============  ===========================================================================
``minnorm``    ``A^+ y`` (the operator's pseudo-inverse)
``tikhonov``   ``argmin ||Ax-y||^2 + lambda ||x||^2``, lambda by the discrepancy principle or GCV
``tv``         isotropic total variation (FISTA with FGP prox, or Chambolle–Pock)
``wavelet_l1`` l1 in an orthonormal Haar basis ((M)FISTA)
``pnp_admm``   plug-and-play ADMM with the prior's denoiser
``unrolled``   a trained Neumann network (Gilton et al. 2019)
``csgm``       compressed sensing with a VAE decoder (Bora et al. 2017)
=============  ===========================================================================

>>> sorted(BASELINES)[:3]
['csgm', 'minnorm', 'pnp_admm']
"""

from bayesinv.samplers.baselines.csgm import csgm
from bayesinv.samplers.baselines.minnorm import minnorm
from bayesinv.samplers.baselines.pnp_admm import pnp_admm
from bayesinv.samplers.baselines.tikhonov import tikhonov
from bayesinv.samplers.baselines.tv import tv
from bayesinv.samplers.baselines.unrolled import unrolled
from bayesinv.samplers.baselines.wavelet import wavelet_l1

__all__ = ["BASELINES", "minnorm", "tikhonov", "tv", "wavelet_l1", "pnp_admm", "unrolled", "csgm"]

BASELINES = {
    "minnorm": minnorm,
    "tikhonov": tikhonov,
    "tv": tv,
    "wavelet_l1": wavelet_l1,
    "pnp_admm": pnp_admm,
    "unrolled": unrolled,
    "csgm": csgm,
}
