"""``InverseProblem``: operator + noise + prior as a Pyro model.

The generative model is::

    x ~ prior                       (event shape = the operator's in_shape)
    theta ~ nuisance priors         (optional: e.g. an unknown blur width; noise sigma lives in the noise model)
    y ~ noise(A_theta(x))

The likelihood is derived here and nowhere else (:meth:`InverseProblem.log_likelihood`, its gradient and
the noise-inflated Gaussian that SMC's twist and annealed Langevin use). Two paths give the same values:

* **traced** (any noise, any operator): condition the Pyro model on ``x`` and the latent values and read
  ``log p(y | ...)`` off the trace of site ``"y"``. A user's own Pyro model takes this path
  (:class:`~bayesinv.model_problem.PyroModelProblem`);
* **closed form**, taken automatically for Gaussian noise and a linear operator:
  ``log N(y; A x, sigma^2 I) = -||y - A x||^2 / (2 sigma^2) - n/2 log(2 pi sigma^2)`` (``n`` real numbers in
  ``y``; a complex value counts its real and imaginary parts). ``method="traced"`` forces the general path.

>>> import torch
>>> from bayesinv.operators import Identity
>>> from bayesinv.noise import Gaussian
>>> problem = InverseProblem(Identity((1, 2, 2)), Gaussian(0.5))
>>> x = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
>>> y = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
>>> problem.log_likelihood(x, y).shape
torch.Size([3])
>>> bool(torch.allclose(problem.log_likelihood(x, y), problem.log_likelihood(x, y, method="traced")))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from bayesinv._validation import check_choice, check_finite, check_tensor
from bayesinv.errors import DTypeError, ShapeError
from bayesinv.noise import Gaussian, NoiseModel, as_real_view
from bayesinv.operators.base import Operator

__all__ = ["InverseProblem", "squared_residual", "LIKELIHOOD_METHODS"]

#: how :meth:`InverseProblem.log_likelihood` is computed: ``"auto"`` (closed form where it exists), ``"traced"``
#: (through the Pyro model) or ``"closed_form"`` (Gaussian noise and a linear operator only)
LIKELIHOOD_METHODS = ("auto", "traced", "closed_form")


def squared_residual(y: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """``||y - prediction||^2`` per chain ``(B,)`` (complex values count real and imaginary parts)."""
    diff = as_real_view(y - prediction)
    return (diff.reshape(diff.shape[0], -1) ** 2).sum(1)


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

    @property
    def latent_priors(self) -> dict[str, dist.Distribution]:
        """The prior of every latent site besides ``x``, by name (noise latents, then nuisance latents)."""
        return {**self.noise.latents, **self.nuisance}

    def resolve_latents(self, latents: Mapping[str, Any] | None, batch: int,
                        like: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fixed values of the latent sites as ``(batch,)`` tensors with ``like``'s real dtype and device.

        Every name in :attr:`latent_names` needs a value; scalars and ``(1,)`` tensors are broadcast.
        """
        latents = dict(latents or {})
        names = self.latent_names
        missing = sorted(set(names) - set(latents))
        if missing:
            raise ValueError(f"this problem has latent site(s) {missing}; pass their values with "
                             f"latents={{{', '.join(repr(k) + ': ...' for k in missing)}}}")
        unknown = sorted(set(latents) - set(names))
        if unknown:
            raise ValueError(f"latents {unknown} are not latent sites of this problem (it has {names})")
        out = {}
        dtype = like.real.dtype if like.is_complex() else like.dtype
        for key, value in latents.items():
            value = torch.as_tensor(value, dtype=dtype, device=like.device)
            if value.ndim == 0 or value.shape == (1,):
                value = value.reshape(()).expand(batch)
            elif value.shape != (batch,):
                raise ShapeError(f"latent {key!r} must be a scalar or have shape ({batch},), got {tuple(value.shape)}")
            out[key] = value
        return out

    def chain_operator(self, latents: Mapping[str, torch.Tensor]) -> Operator:
        """The operator at the nuisance values of ``latents`` (``(B,)`` tensors; the first chain's, which
        samplers that need one operator for all chains require to be shared)."""
        if not self.nuisance:
            return self._operator
        return self.operator_at(**{k: latents[k][0] for k in self.nuisance})

    def gaussian_noise_std(self, latents: Mapping[str, torch.Tensor]) -> torch.Tensor | float | None:
        """The Gaussian noise std (a float, or ``(B,)`` for a latent sigma), or ``None`` for other noise."""
        if not isinstance(self.noise, Gaussian):
            return None
        return self.noise.sigma if self.noise.sigma is not None else latents["sigma"]

    @property
    def known_gaussian_noise(self) -> bool:
        """Whether the noise is Gaussian with a known (fixed) sigma."""
        return isinstance(self.noise, Gaussian) and self.noise.sigma is not None

    @property
    def closed_form_likelihood(self) -> bool:
        """Whether :meth:`log_likelihood` has the closed form: Gaussian noise and a linear operator."""
        op = self.operator_at(**self._default_nuisance())
        return isinstance(self.noise, Gaussian) and bool(getattr(op, "linear", False))

    def describe(self) -> dict[str, Any]:
        """A short JSON-serialisable description for a Posterior's metadata."""
        op = self._operator if not self.nuisance else None
        return {"name": self.name, "operator": repr(op) if op is not None else "factory",
                "noise": repr(self.noise), "prior": type(self.prior).__name__, "latents": list(self.latent_names)}

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

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, *, method: str = "auto", **latents) -> torch.Tensor:
        """``log p(y | x, latents)`` per chain, ``(B,)``; differentiable in ``x`` and the latents.

        ``x: (B, *in_shape)``; ``y: (*out_shape)`` or ``(1 or B, *out_shape)``; latents as tensors of
        shape ``(B,)`` or scalars. ``method``: ``"auto"`` (the closed form for Gaussian noise and a linear
        operator, else traced), ``"traced"`` or ``"closed_form"`` (module docstring).
        """
        check_choice("method", method, LIKELIHOOD_METHODS)
        missing = set(self.latent_names) - set(latents)
        if missing:
            raise ValueError(f"log_likelihood needs values for the latent(s) {sorted(missing)}")
        y = self.check_measurement(y, x)
        closed = self.closed_form_likelihood
        if method == "closed_form" and not closed:
            raise ValueError(f"the closed-form likelihood needs Gaussian noise and a linear operator; this problem "
                             f"has {self.noise!r}: use method='traced'")
        if method == "traced" or not closed:
            trace = poutine.trace(self._likelihood_model).get_trace(y, x, **latents)
            node = trace.nodes["y"]
            return node["fn"].log_prob(node["value"])
        return self.inflated_log_likelihood(x, y, 0.0, covariance="isotropic", **latents)

    def inflated_log_likelihood(self, x: torch.Tensor, y: torch.Tensor, inflation: float, *,
                                covariance: str = "operator", **latents) -> torch.Tensor:
        """The Gaussian likelihood with the covariance inflated by ``inflation = r^2`` (a float), per chain ``(B,)``.

        ``covariance="operator"``: ``log N(y; A x, sigma^2 I + r^2 A A^H)``, diagonal in the operator's SVD
        basis (PiGDM's twist; the covariance of ``y - A x`` when ``x`` carries noise of variance ``r^2``), and
        ``(sigma^2 + r^2) I`` for operators without an SVD. ``covariance="isotropic"``: ``(sigma^2 + r^2) I``
        (Jalal et al. 2021). ``inflation = 0`` is the exact likelihood. Needs Gaussian noise (a latent sigma
        is read from ``latents``). Real measurements may have complex singular vectors (circulant blur:
        ``U = F^H diag(h / |h|)``): the quadratic form is then ``sum_k |(U^H r)_k|^2 / var_k``, exact since
        ``U`` is unitary.
        """
        check_choice("covariance", covariance, ("operator", "isotropic"))
        sigma = self.gaussian_noise_std(latents)
        if sigma is None:
            raise TypeError(f"the Gaussian likelihood needs Gaussian noise, got {self.noise!r}")
        theta = {k: latents[k] for k in self.nuisance}
        op = self.operator_at(**theta) if self.nuisance else self._operator
        y = y.unsqueeze(0) if tuple(y.shape) == tuple(op.out_shape) else y
        resid = y - op(x)
        batch = resid.shape[0]
        real_dtype = resid.real.dtype if resid.is_complex() else resid.dtype
        sigma2 = torch.as_tensor(sigma, dtype=real_dtype, device=resid.device).reshape(-1, 1) ** 2  # (1 or B, 1)
        svd = op.svd_or_none() if (covariance == "operator" and inflation > 0 and op.linear) else None
        if svd is None:
            var = sigma2 + inflation  # (1 or B, 1)
            count = torch.view_as_real(resid[:1]).numel() if resid.is_complex() else resid[:1].numel()
            sq = (as_real_view(resid).reshape(batch, -1) ** 2).sum(1)
            return -sq / (2 * var[:, 0]) - 0.5 * count * torch.log(2 * math.pi * var[:, 0])
        coef = svd.Ut(resid)
        coef = coef.to(torch.promote_types(coef.dtype, resid.dtype))
        sing = svd.singulars.to(device=coef.device, dtype=real_dtype)
        signal = torch.zeros(coef.shape[1], dtype=real_dtype, device=coef.device)
        signal[: sing.shape[0]] = inflation * sing**2
        var = sigma2 + signal  # (1 or B, m)
        if y.is_complex():  # real and imaginary parts each carry sigma^2 (the signal part split evenly)
            var2 = (var + sigma2) / 2
            terms = torch.view_as_real(coef) ** 2 / var2[..., None]
            return -0.5 * (terms.reshape(batch, -1).sum(1) + 2 * torch.log(2 * math.pi * var2).sum(1))
        power = torch.view_as_real(coef).pow(2).sum(-1) if coef.is_complex() else coef**2
        return -0.5 * ((power / var).sum(1) + torch.log(2 * math.pi * var).sum(1))

    def grad_log_likelihood(self, x: torch.Tensor, y: torch.Tensor, *, method: str = "auto",
                            **latents) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p(y|x), grad_x log p(y|x))`` for a batch of ``x``.

        On the closed-form path with real images the gradient is ``Re A^H (y - A x) / sigma^2`` (one forward and
        one adjoint, no autograd graph); otherwise autograd through :meth:`log_likelihood`.
        """
        check_choice("method", method, LIKELIHOOD_METHODS)
        if method != "traced" and self.closed_form_likelihood and not any(
                isinstance(v, torch.Tensor) and v.requires_grad for v in latents.values()):
            theta = {k: latents[k] for k in self.nuisance}
            op = self.operator_at(**theta) if self.nuisance else self._operator
            if not op.input_complex:
                missing = set(self.latent_names) - set(latents)
                if missing:
                    raise ValueError(f"log_likelihood needs values for the latent(s) {sorted(missing)}")
                x = x.detach()
                resid = self.check_measurement(y, x) - op(x)
                sigma = self.gaussian_noise_std(latents)
                var = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1) ** 2  # (1 or B,)
                count = torch.view_as_real(resid[:1]).numel() if resid.is_complex() else resid[:1].numel()
                sq = (as_real_view(resid).reshape(resid.shape[0], -1) ** 2).sum(1)
                ll = -sq / (2 * var) - 0.5 * count * torch.log(2 * math.pi * var)
                grad = op.adjoint(resid) / var.reshape((-1,) + (1,) * (x.ndim - 1))
                return ll, grad.to(x.dtype)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            ll = self.log_likelihood(x, y, method=method, **latents)
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
