"""Analytic priors live where their tensors are: ``.to(device)`` moves them, and nothing they compute is created
on another device.

Two checks per prior family (dense Gaussian, stationary Gaussian, isotropic and dense Gaussian mixtures, lesion
mixture). With the default device set to ``meta`` (tensors without data) while the prior and its inputs stay on
an explicitly named CPU device, every method returns exactly the values of a normal run, on the CPU: a tensor
created without ``device=`` would land on ``meta`` and fail. Moved to ``meta`` (a stand-in for an accelerator),
a copy keeps every tensor there and returns outputs there with the CPU shapes and dtypes.
"""

from __future__ import annotations

import copy

import pytest
import torch

from bayesinv.priors import vp_linear
from bayesinv.priors.gaussian import GaussianPrior, StationaryGaussianPrior
from bayesinv.priors.lesion_mixture import LesionMixturePrior
from bayesinv.priors.mixture import GaussianMixturePrior

CPU = torch.device("cpu")


def _priors():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 16, generator=g, dtype=torch.float64) / 4
    cov = a @ a.T + 0.05 * torch.eye(16, dtype=torch.float64)
    means = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    return {
        "gaussian": GaussianPrior(torch.full((1, 4, 4), 0.5, dtype=torch.float64), cov, schedule=vp_linear(100)),
        "stationary": StationaryGaussianPrior.squared_exponential((1, 4, 4), length_scale=1.5, mean=0.5,
                                                                  schedule=vp_linear(100)),
        "mixture_isotropic": GaussianMixturePrior(torch.tensor([0.2, 0.3, 0.5]), means, 0.3, schedule=vp_linear(100)),
        "mixture_dense": GaussianMixturePrior(torch.tensor([0.2, 0.3, 0.5]), means, torch.stack([cov] * 3),
                                              schedule=vp_linear(100)),
        "lesion": LesionMixturePrior.from_phantoms(8, num_phantoms=50, num_locations=4, schedule=vp_linear(100)),
    }


PRIORS = _priors()


def _outputs(prior, x: torch.Tensor) -> dict[str, torch.Tensor]:
    t = torch.tensor([10, 60, 99][: x.shape[0]], device=x.device)
    out = {"denoise": prior.denoise(x, 30), "denoise_batch_t": prior.denoise(x, t), "score": prior.score(x, 30),
           "noisy_log_prob": prior.noisy_log_prob(x, 30), "log_prob": prior.log_prob(x),
           "draws": prior.sample_n(5, generator=torch.Generator().manual_seed(1))}
    if hasattr(prior, "responsibilities"):
        out["responsibilities"] = prior.responsibilities(x, 30)
    if isinstance(prior, LesionMixturePrior):
        out["locations"] = prior.location_probabilities(x)
        out["components"] = prior.sample_components(4, generator=torch.Generator().manual_seed(2))[1]
    return out


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_analytic_priors_create_nothing_without_an_explicit_device(name):
    prior = PRIORS[name]
    assert prior.device == CPU
    x = prior.sample_n(3, generator=torch.Generator().manual_seed(3)).to(CPU)
    reference = _outputs(prior, x)
    torch.set_default_device("meta")
    try:
        got = _outputs(prior, x)
    finally:
        torch.set_default_device(None)
    for key, value in reference.items():
        assert got[key].device == CPU and torch.equal(got[key], value), key


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_to_moves_every_tensor_of_an_analytic_prior(name):
    prior = PRIORS[name]
    x = prior.sample_n(3, generator=torch.Generator().manual_seed(4))
    moved = copy.deepcopy(prior)  # a meta tensor cannot come back: move a copy
    assert moved.to("meta") is moved and moved.device.type == "meta"
    held = [v for v in vars(moved).values() if isinstance(v, torch.Tensor)]
    if isinstance(moved, LesionMixturePrior):
        held += [v for v in vars(moved.background).values() if isinstance(v, torch.Tensor)]
    assert held and all(v.device.type == "meta" for v in held)
    want, got = prior.denoise(x, 30), moved._denoise(x.to("meta"), 30)  # _denoise: the input's NaN check reads data
    assert got.device.type == "meta" and got.shape == want.shape and got.dtype == want.dtype
    if not hasattr(prior, "weights"):  # mixtures draw components from a CPU copy of the weights: meta has no values
        draws = moved.sample_n(2, generator=torch.Generator().manual_seed(5))  # drawn on the CPU, moved to the prior
        assert draws.device.type == "meta" and draws.shape == (2, *prior.event_shape)
    assert all(v.device == CPU for v in vars(prior).values() if isinstance(v, torch.Tensor))
