"""``InverseProblem``: operator + noise + prior as a Pyro model.

The generative model is::

    x ~ prior                       (event shape = the operator's in_shape)
    theta ~ nuisance priors         (optional: e.g. an unknown blur width; noise sigma lives in the noise model)
    y ~ noise(A_theta(x))

Samplers read the log-likelihood and its gradient by conditioning this model on ``x`` (and the
nuisance values) and tracing it (:meth:`InverseProblem.log_likelihood`), so a user's own model with
the same site names ``"x"`` and ``"y"`` gets the same samplers.

>>> import torch
>>> from bayesinv.operators import Identity
>>> from bayesinv.noise import Gaussian
>>> problem = InverseProblem(Identity((1, 2, 2)), Gaussian(0.5))
>>> x = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
>>> problem.log_likelihood(x, torch.zeros(1, 1, 2, 2, dtype=torch.float64)).shape
torch.Size([3])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from bayesinv._validation import check_finite, check_tensor
from bayesinv.errors import DTypeError, ShapeError
from bayesinv.noise import NoiseModel
from bayesinv.operators.base import Operator

__all__ = ["InverseProblem"]


class InverseProblem:
    """An inverse problem ``y = A(x) + noise`` with a prior on ``x``, as a Pyro model.

    Parameters
    ----------
    operator : an :class:`~bayesinv.operators.Operator`, or a callable ``(**nuisance) -> Operator``
        when the operator depends on nuisance latents (blind deblurring: the kernel width).
    noise : the noise model (its own latents, e.g. an unknown sigma, are part of the model).
    prior : a prior over ``x`` (a Pyro distribution with ``event_shape == in_shape``); optional for
        problems used only to simulate data or to compute likelihoods.
    nuisance : priors of operator nuisance latents, by name (passed to ``operator(**nuisance)``).
    """

    def __init__(self, operator: Operator | Callable[..., Operator], noise: NoiseModel, prior=None, *,
                 nuisance: Mapping[str, dist.Distribution] | None = None, name: str = ""):
        self.nuisance = dict(nuisance or {})
        if self.nuisance and isinstance(operator, Operator):
            raise ValueError("nuisance latents need an operator factory: pass operator=lambda **theta: Operator")
        if not self.nuisance and not isinstance(operator, Operator):
            raise TypeError(f"operator must be an Operator (or a factory with nuisance=...), got {type(operator).__name__}")
        if not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a NoiseModel such as Gaussian(0.05), got {type(noise).__name__}")
        self._operator = operator
        self.noise = noise
        self.prior = prior
        self.name = name
        if prior is not None:
            shape = tuple(prior.event_shape)
            op = self.operator_at(**self._default_nuisance())
            if shape != op.in_shape:
                raise ShapeError(f"the prior's event shape {shape} does not match the operator's in_shape {op.in_shape}")

    # -- structure ------------------------------------------------------------------------------
    @property
    def latent_names(self) -> list[str]:
        """Names of the latent sites besides ``x``: noise latents then operator nuisance latents."""
        return list(self.noise.latents) + list(self.nuisance)

    def operator_at(self, **nuisance) -> Operator:
        """The operator for given nuisance values (the operator itself when there are none)."""
        if not self.nuisance:
            return self._operator
        missing = set(self.nuisance) - set(nuisance)
        if missing:
            raise ValueError(f"missing nuisance value(s) {sorted(missing)} for this problem's operator")
        return self._operator(**{k: nuisance[k] for k in self.nuisance})

    @property
    def operator(self) -> Operator:
        """The operator, for problems without nuisance latents."""
        if self.nuisance:
            raise ValueError(f"this problem's operator depends on latents {sorted(self.nuisance)}: use operator_at(...)")
        return self._operator

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.operator_at(**self._default_nuisance()).in_shape

    def _default_nuisance(self) -> dict[str, torch.Tensor]:
        return {k: d.mean if hasattr(d, "mean") else d.sample() for k, d in self.nuisance.items()}

    # -- the Pyro model --------------------------------------------------------------------------
    def model(self, y: torch.Tensor | None = None, *, num_samples: int = 1) -> torch.Tensor:
        """The Pyro model: ``num_samples`` independent copies of ``x`` (chains) sharing one ``y``."""
        if self.prior is None:
            raise ValueError("this InverseProblem has no prior; pass prior=... to use it as a generative model")
        with pyro.plate("chains", num_samples, dim=-1):
            x = pyro.sample("x", self.prior)
            noise_latents = self.noise.sample_latents()
            theta = {k: pyro.sample(k, d) for k, d in self.nuisance.items()}
            mean = self.operator_at(**theta)(x)
            self.noise.observe("y", mean, y, **noise_latents)
        return x

    def _likelihood_model(self, y: torch.Tensor, x: torch.Tensor, **latents) -> None:
        """The model with ``x`` and the latents given (no prior draw needed): ``y ~ noise(A(x))``."""
        theta = {k: latents[k] for k in self.nuisance}
        noise_latents = {k: latents[k] for k in self.noise.latents}
        with pyro.plate("chains", x.shape[0], dim=-1):
            mean = self.operator_at(**theta)(x)
            self.noise.observe("y", mean, y, **noise_latents)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, **latents) -> torch.Tensor:
        """``log p(y | x, latents)`` per chain, ``(B,)``, obtained by conditioning and tracing the model.

        ``x: (B, *in_shape)``; ``y: (*out_shape)`` or ``(1 or B, *out_shape)``; latents as tensors of
        shape ``(B,)`` or scalars. Differentiable in ``x`` and the latents.
        """
        missing = set(self.latent_names) - set(latents)
        if missing:
            raise ValueError(f"log_likelihood needs values for the latent(s) {sorted(missing)}")
        y = self.check_measurement(y, x)
        trace = poutine.trace(self._likelihood_model).get_trace(y, x, **latents)
        node = trace.nodes["y"]
        return node["fn"].log_prob(node["value"])

    def grad_log_likelihood(self, x: torch.Tensor, y: torch.Tensor, **latents) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p(y|x), grad_x log p(y|x))`` for a batch of ``x``."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            ll = self.log_likelihood(x, y, **latents)
            (grad,) = torch.autograd.grad(ll.sum(), x)
        return ll.detach(), grad

    # -- simulation -------------------------------------------------------------------------------
    def simulate(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **latents) -> torch.Tensor:
        """Draw ``y ~ noise(A(x))`` for given images ``x: (B, *in_shape)`` (and latent values, if any)."""
        op = self.operator_at(**{k: latents[k] for k in self.nuisance}) if self.nuisance else self._operator
        return self.noise.sample(op(x), generator=generator, **{k: latents[k] for k in self.noise.latents})

    def check_measurement(self, y: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Validate ``y`` (shape, real/complex, finite) and return it with a leading batch dimension."""
        check_tensor("y", y)
        op = self.operator_at(**self._default_nuisance())
        out = op.out_shape
        if tuple(y.shape) == out:
            y = y.unsqueeze(0)
        if y.ndim != len(out) + 1 or tuple(y.shape[1:]) != out:
            raise ShapeError(f"y must have shape {out} or (B, {', '.join(map(str, out))}), got {tuple(y.shape)}")
        if y.is_complex() and not op.output_complex:
            raise DTypeError(f"y is complex ({y.dtype}) but {type(op).__name__} produces real measurements")
        if op.output_complex and not y.is_complex():
            raise DTypeError(f"y is real ({y.dtype}) but {type(op).__name__} produces complex measurements "
                             "(e.g. k-space): pass the complex data, not its magnitude or real part")
        if x is not None and y.shape[0] not in (1, x.shape[0]):
            raise ShapeError(f"y has batch size {y.shape[0]} but x has {x.shape[0]}; use 1 or the same")
        return check_finite("y", y)

    def __repr__(self) -> str:
        op = self._operator if not self.nuisance else "factory"
        return f"InverseProblem(operator={op!r}, noise={self.noise!r}, prior={type(self.prior).__name__})"
