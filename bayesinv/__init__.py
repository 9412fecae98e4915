"""bayesinv: Bayesian inverse problems with diffusion priors.

An inverse problem is a probabilistic model (operator + noise + prior); samplers turn it and a
measurement into a :class:`~bayesinv.posterior.Posterior`; diagnostics judge the samples.
"""

from bayesinv.errors import (BayesinvError, ChecksumMismatch, DTypeError, NoDensityError, NonFiniteError,
                             SamplerDivergence, ShapeError, WeightsError)
from bayesinv.noise import Gaussian, Poisson
from bayesinv.model_problem import PyroModelProblem
from bayesinv.problem import InverseProblem

__version__ = "0.1.0"

__all__ = ["BayesinvError", "ChecksumMismatch", "DTypeError", "NoDensityError", "NonFiniteError",
           "SamplerDivergence", "ShapeError", "WeightsError", "Gaussian", "Poisson", "InverseProblem",
           "PyroModelProblem",
           "__version__"]
