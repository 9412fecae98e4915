"""Samplers run on the device of y and the prior, and create every tensor with an explicit device.

The check: the default device is set to ``meta`` (tensors without data) while the problem lives on an explicitly
named CPU device. A tensor created without ``device=`` would land on ``meta`` and the run would fail (mixing
devices, or reading a value that does not exist); a run that passes returns exactly the samples of a normal run,
so it went through the same code path. Operators and analytic priors are checked by their own suites; here the
operator is a dense matrix and the prior a tiny random-init UNet.
"""

from __future__ import annotations

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import vp_linear
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.networks.unet import UNet
from bayesinv.samplers import SAMPLERS

DEVICE = torch.device("cpu")
OPTIONS = {
    "dps": {"steps": 4},
    "ddrm": {"steps": 4},
    "score_sde": {"steps": 4},
    "annealed_langevin": {"steps": 2, "steps_per_level": 2},
    "ula": {"steps": 4, "noise_level": 0.1},
    "pnp_ula": {"steps": 4, "noise_level": 0.1},
    "smc": {"steps": 4, "num_particles": 3},
}


def _problem():
    with torch.random.fork_rng():  # the UNet's init must not touch the global stream of other tests
        torch.manual_seed(0)
        net = UNet(base_channels=8, channel_mults=(1,), attention_resolutions=(), image_size=8)
    prior = DiffusionPrior(net, vp_linear(40, 1e-3, 0.3), "x0").to(DEVICE)
    matrix = torch.randn(20, 64, generator=torch.Generator(device=DEVICE).manual_seed(1), dtype=torch.float32,
                         device=DEVICE) / 8
    problem = InverseProblem(MatrixOperator(matrix, in_shape=(1, 8, 8)), Gaussian(0.05), prior)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator(device=DEVICE).manual_seed(2), device=DEVICE)
    return problem, problem.simulate(x, generator=torch.Generator(device=DEVICE).manual_seed(3))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_samplers_create_nothing_without_an_explicit_device(name):
    # mala: no density for network priors; dirac: its own model; split_gibbs (and split_gibbs_smc): needs sigma_y / ||A|| above the
    # schedule's lowest noise level, which this 40-step schedule does not reach (covered by test_dtypes.py)
    assert set(SAMPLERS) - set(OPTIONS) == {"mala", "dirac", "split_gibbs", "split_gibbs_smc"}
    problem, y = _problem()
    assert y.device == DEVICE

    def run():
        return SAMPLERS[name](problem, y, num_samples=2, generator=torch.Generator(device=DEVICE).manual_seed(0),
                              progress=False, **OPTIONS[name])

    reference = run()
    torch.set_default_device("meta")
    try:
        post = run()
    finally:
        torch.set_default_device(None)
    assert post.samples.device == DEVICE and post.samples.dtype == y.dtype
    assert torch.equal(post.samples, reference.samples)


def test_a_tensor_created_without_device_is_caught():
    """The check works: a factory call without ``device=`` under the meta default fails when mixed with data."""
    torch.set_default_device("meta")
    try:
        with pytest.raises((RuntimeError, NotImplementedError)):
            bool((torch.zeros(2) + torch.ones(2, device=DEVICE)).all())
    finally:
        torch.set_default_device(None)
