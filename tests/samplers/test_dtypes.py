"""Every sampler of the registry runs on float32 and float64 problems, with an analytic (exact mixture) and a network
prior (a tiny random-init UNet), on the device of y and the prior; samples keep the problem's dtype and device."""

from __future__ import annotations

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.errors import NoDensityError
from bayesinv.operators.degradation import GeometricNoise, InpaintDegradation
from bayesinv.operators.inpaint import random_mask
from bayesinv.priors import GaussianMixturePrior, vp_linear
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.networks.unet import UNet
from bayesinv.samplers import SAMPLERS
from bayesinv.samplers.dirac import DiracModel
from tests.samplers.helpers import TINY_OPTIONS

SHAPE = (1, 8, 8)
NOISE = GeometricNoise(0.01, 0.05)
OPTIONS = TINY_OPTIONS


def _prior(kind: str, device: torch.device):
    schedule = vp_linear(50, 1e-3, 0.3)
    if kind == "analytic":  # 3 components with means in [0, 1]
        means = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        return GaussianMixturePrior(torch.ones(3), means, 0.02, schedule=schedule)
    torch_gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # the UNet's random init must not touch the global stream of other tests
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=torch_gen)))
        net = UNet(base_channels=8, channel_mults=(1,), attention_resolutions=(), image_size=8)
    return DiffusionPrior(net, schedule, "x0").to(device)


def _problem(prior, dtype: torch.dtype, device: torch.device):
    deg = InpaintDegradation(SHAPE, random_mask(SHAPE[1:], 0.5, torch.Generator().manual_seed(1)))
    problem = InverseProblem(deg.operator_at(1.0), Gaussian(NOISE.sigma_max), prior)
    x = torch.rand(1, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=dtype).to(device)
    y = problem.simulate(x, generator=torch.Generator().manual_seed(3))
    model = DiracModel(lambda y_t, t: 0.9 * y_t, deg, NOISE, "scaled-identity")
    return problem, y, model


@pytest.mark.parametrize("kind", ["analytic", "network"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_on_both_precisions_and_prior_kinds(name, dtype, kind):
    device = torch.device("cpu")
    prior = _prior(kind, device)
    problem, y, model = _problem(prior, dtype, device)
    assert y.dtype == dtype
    options = dict(OPTIONS[name], **({"model": model} if name == "dirac" else {}))
    run = lambda: SAMPLERS[name](problem, y, num_samples=2, generator=torch.Generator().manual_seed(0),  # noqa: E731
                                 progress=False, **options)
    if name == "mala" and kind == "network":
        with pytest.raises(NoDensityError, match="explicit log_prob"):
            run()
        return
    post = run()
    assert post.samples.dtype == dtype and post.samples.device == device
    assert post.samples.shape[0] == 2 and post.samples.shape[2:] == SHAPE
    assert bool(torch.isfinite(post.samples).all())
