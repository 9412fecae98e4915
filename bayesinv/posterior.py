"""``Posterior``: what every sampler returns — samples plus the metadata needed to trust them.

Samples have shape ``(chains, draws, *event_shape)`` (``event_shape`` is ``(C, H, W)`` for images,
``(d,)`` for vectors). Diffusion samplers draw independent chains with one draw each
(``(num_samples, 1, ...)``); MCMC returns several draws per chain; point-estimate baselines return a
single draw with ``point_estimate=True``.

Summaries use numpy for moments and quantiles (equal-tailed intervals are quantiles) and arviz for
highest-density intervals, ESS and R-hat. ``save``/``load`` use safetensors for the tensors and JSON
for the metadata (never pickle).

>>> import torch
>>> post = Posterior(torch.zeros(4, 1, 3), sampler="demo")
>>> post.num_samples, tuple(post.mean().shape)
(4, (3,))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bayesinv._validation import check_tensor
from bayesinv.errors import ShapeError

if TYPE_CHECKING:
    import arviz as az

__all__ = ["Posterior"]


def _arviz():
    """:mod:`bayesinv._arviz` (the arviz 0.x/1.x calls), imported on first use: arviz costs seconds."""
    from bayesinv import _arviz as shim

    return shim


@dataclass
class Posterior:
    """Posterior samples and their provenance.

    Attributes
    ----------
    samples : ``(chains, draws, *event_shape)`` tensor.
    sampler : the sampler's name (e.g. ``"dps"``).
    settings : the sampler's options (JSON-serialisable).
    nfe : number of network (denoiser) evaluations per chain.
    wall_time : seconds spent sampling.
    seed : the seed the generator was created from, if known.
    problem : a short description of the problem (operator, noise, prior), JSON-serialisable.
    point_estimate : True for deterministic baselines (a single draw that is not a sample).
    extras : other diagnostics a sampler reports (acceptance rate, ESS per step, ...).
    """

    samples: torch.Tensor
    sampler: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    nfe: int = 0
    wall_time: float = 0.0
    seed: int | None = None
    problem: dict[str, Any] = field(default_factory=dict)
    point_estimate: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        check_tensor("samples", self.samples)
        if self.samples.ndim < 3:
            raise ShapeError(f"samples must have shape (chains, draws, *event_shape), got {tuple(self.samples.shape)}")
        self.samples = self.samples.detach()

    # -- shape ----------------------------------------------------------------------------------
    @property
    def num_chains(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_draws(self) -> int:
        return int(self.samples.shape[1])

    @property
    def num_samples(self) -> int:
        return self.num_chains * self.num_draws

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape[2:])

    def flat(self) -> torch.Tensor:
        """All samples as ``(num_samples, *event_shape)``."""
        return self.samples.reshape(self.num_samples, *self.event_shape)

    # -- summaries -------------------------------------------------------------------------------
    def mean(self) -> torch.Tensor:
        return self.flat().mean(0)

    def std(self) -> torch.Tensor:
        """Sample standard deviation (``ddof=1``; zero for a point estimate)."""
        flat = self.flat()
        if flat.shape[0] < 2:
            return torch.zeros_like(flat[0].real)
        return flat.std(0, correction=1)

    def quantile(self, q) -> torch.Tensor:
        """Per-coordinate quantiles; ``q`` a float or a sequence -> ``(len(q), *event_shape)``."""
        flat = self.flat()
        qs = torch.as_tensor(q, dtype=flat.dtype)
        return torch.quantile(flat, qs, dim=0)

    def interval(self, level: float = 0.9, kind: str = "eti") -> tuple[torch.Tensor, torch.Tensor]:
        """Per-coordinate credible interval ``(lower, upper)`` of probability ``level``.

        ``kind="eti"``: equal-tailed (quantiles ``(1-level)/2`` and ``(1+level)/2``);
        ``kind="hdi"``: highest-density interval (arviz ``hdi``, the narrowest interval of that mass).
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        if kind == "eti":
            lo, hi = self.quantile([(1 - level) / 2, (1 + level) / 2])
            return lo, hi
        if kind == "hdi":
            arr = self.samples.double().cpu().numpy()
            hdi = _arviz().hdi(arr.reshape(arr.shape[0], arr.shape[1], -1), level)  # (n, 2)
            hdi = torch.from_numpy(np.asarray(hdi)).to(self.samples.dtype)
            return hdi[..., 0].reshape(self.event_shape), hdi[..., 1].reshape(self.event_shape)
        raise ValueError(f"unknown interval kind {kind!r}; use 'eti' or 'hdi'")

    def to_arviz(self, var_name: str = "x", observed: torch.Tensor | None = None,
                 observed_name: str = "y") -> Any:
        """The samples as arviz data: ``x`` and any sampled latents in ``posterior``, ``y`` in ``observed_data``.

        The ``posterior`` group holds ``var_name`` with dims ``(chain, draw, x_dim_0, ...)`` and one
        variable per scalar latent a sampler drew alongside the image (``extras["latents"]``, e.g. the
        noise level ``sigma`` or a blur ``width`` from :func:`~bayesinv.samplers.sample_gibbs`), each
        ``(chain, draw)``. Latents held fixed (``settings["latents"]``) are not draws and are left out.
        Complex samples are exported as ``(..., 2)`` real/imaginary pairs (last dim ``re_im``).
        ``observed`` (the measurement ``y``) goes to ``observed_data`` under ``observed_name``.

        Returns ``arviz.InferenceData`` (arviz 0.x) or ``xarray.DataTree`` (arviz 1.x); both work with
        ``arviz.summary``, ``arviz.ess`` and ``arviz.rhat``.

        >>> import torch
        >>> post = Posterior(torch.zeros(2, 5, 3), extras={"latents": {"sigma": [[0.1] * 5, [0.2] * 5]}})
        >>> data = post.to_arviz(observed=torch.ones(3))
        >>> sorted(data.posterior.data_vars), data.posterior["sigma"].shape, data["observed_data"]["y"].shape
        (['sigma', 'x'], (2, 5), (3,))
        """
        samples = self.samples.detach().cpu()
        dims: dict[str, list[str]] = {}
        if samples.is_complex():
            samples = torch.view_as_real(samples)
            dims[var_name] = [f"{var_name}_dim_{i}" for i in range(len(self.event_shape))] + ["re_im"]
        posterior = {var_name: samples.numpy()}
        for name, values in dict(self.extras.get("latents", {})).items():
            if name == var_name:
                raise ValueError(f"latent {name!r} clashes with var_name={var_name!r}; pick another var_name")
            if isinstance(values, torch.Tensor):
                values = values.detach().cpu().numpy()
            array = np.asarray(values, dtype=np.float64)
            if array.shape != (self.num_chains, self.num_draws):
                raise ShapeError(f"extras['latents'][{name!r}] has shape {array.shape}; expected one value per "
                                 f"(chain, draw), {(self.num_chains, self.num_draws)}")
            posterior[name] = array
        observed_data = None
        if observed is not None:
            obs = torch.as_tensor(observed).detach().cpu()
            if obs.is_complex():
                obs = torch.view_as_real(obs)
            observed_data = {observed_name: obs.numpy()}
        attrs = {"sampler": self.sampler, "nfe": self.nfe, "wall_time": self.wall_time,
                 "point_estimate": int(self.point_estimate)}
        if self.seed is not None:
            attrs["seed"] = self.seed
        return _arviz().from_dict(posterior, observed_data, attrs=attrs, dims=dims or None)

    def ess(self) -> torch.Tensor:
        """Bulk effective sample size per coordinate (arviz); needs at least 4 draws per chain."""
        self._need_draws("ess")
        return torch.from_numpy(_arviz().ess(self.samples.detach().cpu().numpy()))

    def rhat(self) -> torch.Tensor:
        """Rank-normalised split R-hat per coordinate (arviz); needs at least 2 chains of 4 draws."""
        self._need_draws("rhat")
        if self.num_chains < 2:
            raise ValueError("rhat needs at least 2 chains")
        return torch.from_numpy(_arviz().rhat(self.samples.detach().cpu().numpy()))

    def _need_draws(self, what: str) -> None:
        if self.num_draws < 4:
            raise ValueError(f"{what} needs Markov chains with >= 4 draws each; this posterior has "
                             f"{self.num_draws} draw(s) per chain (independent samples: use num_samples instead)")

    # -- persistence -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "settings": self.settings, "nfe": self.nfe, "wall_time": self.wall_time,
                "seed": self.seed, "problem": self.problem, "point_estimate": self.point_estimate,
                "extras": self.extras, "shape": list(self.samples.shape), "format": "bayesinv.Posterior/1"}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>`` (safetensors) and ``<path>.json`` (metadata) atomically; returns the tensor path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"samples": self.samples.contiguous().cpu()}, str(tmp))
        meta_tmp = path.with_name(path.name + ".json.tmp")
        meta_tmp.write_text(json.dumps(self.metadata(), indent=2, default=_jsonable))
        os.chmod(tmp, meta_tmp.stat().st_mode & 0o777)  # safetensors writes 0600; match the .json (umask)
        os.replace(tmp, path)
        os.replace(meta_tmp, path.with_name(path.name + ".json"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Posterior:
        """Read a posterior written by :meth:`save`."""
        path = Path(path)
        meta_path = path.with_name(path.name + ".json")
        if not path.exists() or not meta_path.exists():
            raise FileNotFoundError(f"posterior files missing: need {path} and {meta_path}")
        meta = json.loads(meta_path.read_text())
        samples = load_file(str(path))["samples"]
        return cls(samples, sampler=meta["sampler"], settings=meta["settings"], nfe=meta["nfe"],
                   wall_time=meta["wall_time"], seed=meta["seed"], problem=meta["problem"],
                   point_estimate=meta["point_estimate"], extras=meta.get("extras", {}))

    def __repr__(self) -> str:
        return (f"Posterior(sampler={self.sampler!r}, samples={tuple(self.samples.shape)}, nfe={self.nfe}, "
                f"wall_time={self.wall_time:.2f}s)")


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)
