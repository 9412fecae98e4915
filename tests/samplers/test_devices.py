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
from tests.samplers.helpers import TINY_OPTIONS

DEVICE = torch.device("cpu")
OPTIONS = {name: TINY_OPTIONS[name] for name in ("dps", "ddrm", "score_sde", "annealed_langevin", "ula", "pnp_ula",
                                                 "smc")}


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


# -- analytic priors (exact scores) with every operator family that has an SVD ------------------------------------
ANALYTIC_OPTIONS = {**OPTIONS, "mala": TINY_OPTIONS["mala"], "exact": {}}


def _analytic_problem(prior_name: str, operator_name: str):
    from bayesinv.operators import make_operator
    from bayesinv.priors.gaussian import GaussianPrior, StationaryGaussianPrior
    from bayesinv.priors.lesion_mixture import LesionMixturePrior
    from bayesinv.priors.mixture import GaussianMixturePrior

    g = torch.Generator(device=DEVICE).manual_seed(4)
    schedule = vp_linear(100)
    if prior_name == "gaussian":
        a = torch.randn(64, 64, generator=g, dtype=torch.float64, device=DEVICE) / 8
        prior = GaussianPrior(torch.full((1, 8, 8), 0.5, dtype=torch.float64, device=DEVICE),
                              a @ a.T + 0.01 * torch.eye(64, dtype=torch.float64, device=DEVICE), schedule=schedule)
    elif prior_name == "stationary":
        prior = StationaryGaussianPrior.squared_exponential((1, 8, 8), length_scale=2.0, mean=0.5, schedule=schedule)
    elif prior_name == "mixture":
        means = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64, device=DEVICE)
        prior = GaussianMixturePrior(torch.tensor([0.2, 0.3, 0.5], device=DEVICE), means, 0.05, schedule=schedule)
    else:
        prior = LesionMixturePrior.from_phantoms(8, num_phantoms=50, num_locations=4, schedule=schedule)
    options = {"factor": 2} if operator_name == "superres" else {}
    problem = InverseProblem(make_operator(operator_name, (1, 8, 8), seed=0, **options).to(DEVICE), Gaussian(0.1),
                             prior.to(DEVICE))
    x = prior.sample_n(1, generator=torch.Generator(device=DEVICE).manual_seed(5))
    return problem, problem.simulate(x, generator=torch.Generator(device=DEVICE).manual_seed(6))


# every analytic prior family, every SVD operator family, each at least once
ANALYTIC_CASES = [("gaussian", "cs_gaussian"), ("stationary", "deblur"), ("mixture", "superres"),
                  ("lesion", "mri"), ("gaussian", "cs_fourier"), ("mixture", "denoise"), ("gaussian", "inpaint")]


@pytest.mark.parametrize("prior_name, operator_name", ANALYTIC_CASES)
def test_samplers_on_analytic_priors_create_nothing_without_an_explicit_device(prior_name, operator_name):
    """Every sampler (and the exact posterior) on analytic priors through the operators' SVDs: under a ``meta``
    default device, the samples equal a normal run's, on the CPU."""
    from bayesinv.priors.exact import sample_exact

    problem, y = _analytic_problem(prior_name, operator_name)
    failed = []
    for name, options in ANALYTIC_OPTIONS.items():
        function = sample_exact if name == "exact" else SAMPLERS[name]
        extra = {} if name == "exact" else {"progress": False}

        def run():
            return function(problem, y, num_samples=2, generator=torch.Generator(device=DEVICE).manual_seed(0),
                            **extra, **options)

        reference = run()
        torch.set_default_device("meta")
        try:
            post = run()
            if not (post.samples.device == DEVICE and torch.equal(post.samples, reference.samples)):
                failed.append(f"{name}: different samples")
        except (RuntimeError, NotImplementedError) as err:
            failed.append(f"{name}: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
        finally:
            torch.set_default_device(None)
    assert not failed, failed


@pytest.mark.parametrize("name", ["split_gibbs", "split_gibbs_smc"])
def test_split_gibbs_creates_nothing_without_an_explicit_device(name):
    problem, y = _analytic_problem("gaussian", "denoise")

    def run():
        return SAMPLERS[name](problem, y, num_samples=2, steps=3, progress=False,
                                       generator=torch.Generator(device=DEVICE).manual_seed(0))

    reference = run()
    torch.set_default_device("meta")
    try:
        assert torch.equal(run().samples, reference.samples)
    finally:
        torch.set_default_device(None)
