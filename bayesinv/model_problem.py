"""A user's own Pyro model as an inverse problem: the samplers read its likelihood by tracing it.

Write the model as you would in Pyro, with a sample site ``"x"`` drawn from a score prior and an observed
site ``"y"``; any other sample sites are latents (a detector gain, an unknown noise level)::

    def model(y=None):
        x = pyro.sample("x", prior)                                   # (B, *event) when the samplers condition it
        gain = pyro.sample("gain", dist.LogNormal(3.0, 0.2))          # (B,) when conditioned, () when drawn
        rate = gain.reshape(-1, *[1] * len(prior.event_shape)) * softplus(blur(x.reshape(-1, *prior.event_shape)))
        return pyro.sample("y", dist.Poisson(rate).to_event(len(prior.event_shape)), obs=y)

The samplers condition ``"x"`` on a batch of chains ``(B, *event_shape)`` and each latent on ``(B,)`` values
(held fixed per chain with ``latents=...``, or drawn by :func:`~bayesinv.samplers.gibbs.sample_gibbs`), trace
the model with the measurement, and read ``log p(y | x, latents)`` per chain off site ``"y"``
(:meth:`PyroModelProblem.log_likelihood`); gradients follow by autograd. So the model must broadcast over a
leading chain dimension, as above. DPS (``guidance="loglik"``), annealed Langevin, ULA, PnP-ULA (pass
``step_size``: no Lipschitz constant is known), MALA (priors with a density) and SMC (``twist_variance=0``)
accept such a problem; DDRM and score-SDE need an operator and Gaussian noise and refuse it.

>>> import torch, pyro, pyro.distributions as dist
>>> from bayesinv.priors import GaussianPrior
>>> prior = GaussianPrior(torch.zeros(2, dtype=torch.float64), 1.0)
>>> def model(y=None):
...     x = pyro.sample("x", prior)
...     return pyro.sample("y", dist.Normal(x, 0.5).to_event(1), obs=y)
>>> problem = PyroModelProblem(model, prior, measurement_shape=(2,))
>>> problem.log_likelihood(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)).shape
torch.Size([3])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyro.distributions as dist
import torch
from pyro import poutine

from bayesinv._validation import check_choice, check_finite, check_tensor
from bayesinv.errors import DTypeError, ShapeError
from bayesinv.problem import LIKELIHOOD_METHODS, InverseProblem

__all__ = ["PyroModelProblem"]


class PyroModelProblem(InverseProblem):
    """A Pyro model ``model(y=None)`` with sites ``"x"`` (the image) and ``"y"`` (observed), as a problem.

    Parameters
    ----------
    model : the Pyro model (module docstring); every sample site other than ``"x"`` and ``"y"`` is a latent.
    prior : the score prior that the model draws ``"x"`` from (the samplers read its denoiser).
    measurement_shape : the shape of one measurement ``y`` (the samplers take ``y`` as ``measurement_shape`` or
        ``(1, *measurement_shape)``).
    complex_measurement : whether ``y`` is complex.
    """

    def __init__(self, model: Callable[..., Any], prior, *, measurement_shape: Sequence[int],
                 complex_measurement: bool = False, name: str = ""):
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model model(y=None), got {type(model).__name__}")
        if not hasattr(prior, "event_shape"):
            raise TypeError(f"prior must be a distribution with an event_shape, got {type(prior).__name__}")
        self._model = model
        self.prior = prior
        self.noise = None
        self.nuisance = {}
        self._operator = None
        self.name = name
        self.out_shape = tuple(int(s) for s in measurement_shape)
        self.complex_measurement = bool(complex_measurement)
        self._latent_priors = self._discover()

    def _discover(self) -> dict[str, dist.Distribution]:
        """Trace the model once with ``x`` fixed (no prior draw): its other unobserved sample sites are latents."""
        x = torch.zeros((1, *self.prior.event_shape), dtype=torch.float64, device="cpu")
        try:
            trace = poutine.trace(poutine.condition(self._model, data={"x": x})).get_trace()
        except Exception as err:
            raise ValueError(f"tracing the Pyro model with x fixed to zeros (1, *event_shape) failed: {err}") from err
        for site in ("x", "y"):
            if site not in trace.nodes or trace.nodes[site]["type"] != "sample":
                raise ValueError(f"the Pyro model needs a sample site named {site!r} (x ~ prior, y ~ likelihood)")
        return {name: node["fn"] for name, node in trace.nodes.items()
                if node["type"] == "sample" and name not in ("x", "y") and not node["is_observed"]}

    # -- structure -----------------------------------------------------------------------------
    @property
    def latent_names(self) -> list[str]:
        return list(self._latent_priors)

    @property
    def latent_priors(self) -> dict[str, dist.Distribution]:
        return dict(self._latent_priors)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.prior.event_shape)

    def _no_operator(self):
        return TypeError("a PyroModelProblem has no operator (its likelihood is whatever the model says); samplers "
                         "that need one (DDRM, score-SDE, Dirac, the baselines) need an InverseProblem")

    @property
    def operator(self):
        raise self._no_operator()

    def operator_at(self, **nuisance):
        raise self._no_operator()

    def chain_operator(self, latents):
        raise self._no_operator()

    def gaussian_noise_std(self, latents):
        return None

    @property
    def known_gaussian_noise(self) -> bool:
        return False

    @property
    def closed_form_likelihood(self) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "operator": "pyro model", "noise": getattr(self._model, "__name__", "model"),
                "prior": type(self.prior).__name__, "latents": self.latent_names}

    # -- the model -----------------------------------------------------------------------------
    def model(self, y: torch.Tensor | None = None, **kwargs) -> Any:
        """The user's model."""
        return self._model(y, **kwargs)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, *, method: str = "auto", **latents) -> torch.Tensor:
        """``log p(y | x, latents)`` per chain ``(B,)``: the model conditioned on ``x`` and the latents, traced
        with ``y`` observed; the log-density of site ``"y"`` summed over all but the chain dimension."""
        check_choice("method", method, LIKELIHOOD_METHODS)
        if method == "closed_form":
            raise ValueError("a PyroModelProblem has no closed-form likelihood: use method='traced' or 'auto'")
        missing = set(self.latent_names) - set(latents)
        if missing:
            raise ValueError(f"log_likelihood needs values for the latent(s) {sorted(missing)}")
        y = self.check_measurement(y, x)
        conditioned = poutine.condition(self._model, data={"x": x, **latents})
        node = poutine.trace(conditioned).get_trace(y).nodes["y"]
        if not node["is_observed"]:
            raise ValueError("the model's site 'y' is not observed: pass y as pyro.sample('y', ..., obs=y)")
        log_prob = node["fn"].log_prob(node["value"])
        if log_prob.ndim == 0 or log_prob.shape[0] != x.shape[0]:
            raise ShapeError(f"the log-density of site 'y' has shape {tuple(log_prob.shape)}, expected ({x.shape[0]}, "
                             "...): the model must broadcast over a leading chain dimension of x and the latents")
        return log_prob.reshape(x.shape[0], -1).sum(1)

    def inflated_log_likelihood(self, x, y, inflation, *, covariance="operator", **latents):
        raise TypeError("the noise-inflated Gaussian likelihood needs Gaussian noise and an operator; a "
                        "PyroModelProblem has neither (SMC: twist_variance=0; annealed Langevin: "
                        "likelihood_inflation='none')")

    def simulate(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **latents) -> torch.Tensor:
        raise TypeError("simulate y by running your model: pyro.poutine.condition(model, {'x': x, ...})()")

    def check_measurement(self, y: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Validate ``y`` (shape, real/complex, finite) and return it with a leading batch dimension."""
        check_tensor("y", y)
        if tuple(y.shape) == self.out_shape:
            y = y.unsqueeze(0)
        if y.ndim != len(self.out_shape) + 1 or tuple(y.shape[1:]) != self.out_shape:
            raise ShapeError(f"y must have shape {self.out_shape} or (B, {', '.join(map(str, self.out_shape))}), "
                             f"got {tuple(y.shape)}")
        if y.is_complex() != self.complex_measurement:
            raise DTypeError(f"y is {'complex' if y.is_complex() else 'real'} ({y.dtype}) but the problem was declared "
                             f"with complex_measurement={self.complex_measurement}")
        if x is not None and y.shape[0] not in (1, x.shape[0]):
            raise ShapeError(f"y has batch size {y.shape[0]} but x has {x.shape[0]}; use 1 or the same")
        return check_finite("y", y)

    def __repr__(self) -> str:
        return (f"PyroModelProblem(model={getattr(self._model, '__name__', 'model')}, "
                f"prior={type(self.prior).__name__}, latents={self.latent_names})")
