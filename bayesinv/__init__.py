"""bayesinv: Bayesian inverse problems with diffusion priors.

An inverse problem is a probabilistic model (operator + noise + prior); samplers turn it and a
measurement into a :class:`~bayesinv.posterior.Posterior`; diagnostics judge the samples.
"""

from typing import TYPE_CHECKING

from bayesinv.errors import (BayesinvError, ChecksumMismatch, DTypeError, NoDensityError, NonFiniteError,
                             SamplerDivergence, ShapeError, WeightsError)

if TYPE_CHECKING:
    from bayesinv.noise import Gaussian, Poisson
    from bayesinv.model_problem import PyroModelProblem
    from bayesinv.problem import InverseProblem

__version__ = "0.1.0"

_LAZY = {"Gaussian": "bayesinv.noise", "Poisson": "bayesinv.noise", "InverseProblem": "bayesinv.problem",
         "PyroModelProblem": "bayesinv.model_problem"}


def __getattr__(name: str):
    """Import torch-backed names on first use, so that ``bayesinv --help`` does not import torch."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesinv' has no attribute {name!r}")

__all__ = ["BayesinvError", "ChecksumMismatch", "DTypeError", "NoDensityError", "NonFiniteError",
           "SamplerDivergence", "ShapeError", "WeightsError", "Gaussian", "Poisson", "InverseProblem",
           "PyroModelProblem",
           "__version__"]
