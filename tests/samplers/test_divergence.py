"""Divergence and option checks, the same for every sampler: blown-up iterates raise SamplerDivergence naming the
step; options with an invalid sign or range are refused with a ValueError before any network call."""

from __future__ import annotations

import math

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv._validation import check_number, check_step
from bayesinv.errors import SamplerDivergence
from bayesinv.noise import Poisson
from bayesinv.operators import Identity
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, vp_linear
from bayesinv.samplers import SAMPLERS
from bayesinv.samplers._driver import DIVERGENCE_FACTOR, divergence_bound, timestep_bound
from tests.samplers.helpers import TinyNetworkPrior


class CountingPrior(GaussianPrior):
    """A Gaussian prior that counts its denoiser calls (the samplers' unit of work)."""

    calls = 0

    def _denoise(self, x_t, t):
        CountingPrior.calls += 1
        return super()._denoise(x_t, t)


def _problem(d: int = 4):
    prior = CountingPrior(torch.full((d,), 0.5, dtype=torch.float64), 0.25, schedule=vp_linear(50, 1e-3, 0.3))
    matrix = torch.eye(d, dtype=torch.float64)[: d - 1] + 0.1
    return InverseProblem(MatrixOperator(matrix), Gaussian(0.1), prior), torch.full((1, d - 1), 0.6,
                                                                                      dtype=torch.float64)


def test_divergence_bound_is_ten_spans_around_the_centre():
    analytic = GaussianPrior(torch.tensor([1.0, 3.0], dtype=torch.float64), 0.25)  # range (1 - 2, 3 + 2)
    assert divergence_bound(analytic) == pytest.approx((2.0, DIVERGENCE_FACTOR * 6.0))
    network = TinyNetworkPrior(2, torch.Generator().manual_seed(0))  # pixel_range (0, 1)
    assert divergence_bound(network) == pytest.approx((0.5, DIVERGENCE_FACTOR))
    alpha, sigma = float(network.schedule.alpha[10]), float(network.schedule.sigma[10])
    assert timestep_bound(network, 10) == pytest.approx((0.5 * alpha, DIVERGENCE_FACTOR * (alpha + sigma)))
    assert timestep_bound(network, -1) == divergence_bound(network)
    assert divergence_bound(None) == (0.0, None)
    # noise above the signal (sigma / alpha > span): only NaN/inf are checked
    assert divergence_bound(network, 0.1, 0.2) == pytest.approx((0.05, None))
    assert divergence_bound(network, 1.0, 5.0, level=0.5) == pytest.approx((0.5, DIVERGENCE_FACTOR * 6.0))


def test_check_step_names_the_reason():
    x = torch.tensor([[0.0, 11.0]])
    with pytest.raises(SamplerDivergence, match=r"demo diverged at step 3: the iterate left the prior's range") as err:
        check_step("demo", 3, x, last_good=torch.zeros(1, 2), centre=0.5, radius=10.0)
    assert err.value.step == 3 and err.value.reason == "the iterate left the prior's range"
    assert check_step("demo", 3, x, centre=0.5, radius=11.0) is x
    with pytest.raises(SamplerDivergence, match="non-finite values in the iterate .*1 of 2 values are NaN"):
        check_step("demo", 0, torch.tensor([[math.nan, 0.0]]), radius=10.0)


def test_dps_with_a_huge_guidance_scale_raises_instead_of_returning_1e9():
    problem, y = _problem()
    with pytest.raises(SamplerDivergence, match=r"dps diverged at step \d+: the iterate left the prior's range"):
        SAMPLERS["dps"](problem, y, num_samples=2, steps=20, guidance_scale=1e8,
                        generator=torch.Generator().manual_seed(0), progress=False)


def test_ula_with_a_huge_step_raises_instead_of_returning_1e151():
    problem, y = _problem()
    with pytest.raises(SamplerDivergence, match=r"ula diverged at step \d+") as err:
        SAMPLERS["ula"](problem, y, num_samples=2, steps=200, step_size=1e3, noise_level=0.1,
                        generator=torch.Generator().manual_seed(0), progress=False)
    assert err.value.step < 10 and err.value.last_good is not None


def test_annealed_langevin_with_a_huge_step_raises():
    """With Gaussian noise and a linear operator the step is capped (test_langevin.py); Poisson noise has no
    known Lipschitz constant, so a huge step blows up and is caught."""
    base, y = _problem()
    problem = InverseProblem(base.operator, Poisson(20.0), base.prior)
    with pytest.raises(SamplerDivergence, match=r"annealed_langevin diverged at step \d+"):
        SAMPLERS["annealed_langevin"](problem, y, num_samples=2, steps=3, steps_per_level=20, step_size=10.0,
                                      generator=torch.Generator().manual_seed(0), progress=False)


BAD_OPTIONS = [
    ("dps", {"guidance_scale": -0.5}, "guidance_scale must be in"),
    ("dps", {"guidance_scale": math.nan}, "guidance_scale must be a number"),
    ("dps", {"guidance_scale": True}, "guidance_scale must be a number"),
    ("dps", {"clip_denoised": (1.0, 0.0)}, "clip_denoised"),
    ("ddrm", {"eta": 1.5}, r"eta must be in \[0.0, 1.0\]"),
    ("ddrm", {"eta": -0.1}, r"eta must be in"),
    ("ddrm", {"eta_b": 2.0}, r"eta_b must be in"),
    ("ddrm", {"eta": "0.5"}, r"eta must be a number"),
    ("score_sde", {"snr": -1.0}, "snr must be in"),
    ("score_sde", {"dc_weight": 1.5}, "dc_weight must be in"),
    ("score_sde", {"cutoff": -0.1}, "cutoff must be in"),
    ("score_sde", {"corrector_steps": -1}, "corrector_steps"),
    ("annealed_langevin", {"step_size": 0.0}, r"step_size must be in \(0.0, inf\]"),
    ("annealed_langevin", {"step_size": -2e-5}, "step_size must be in"),
    ("annealed_langevin", {"noise_levels": (0.01, 1.0)}, r"noise_levels\[1\] must be in"),
    ("annealed_langevin", {"noise_levels": (1.0, -0.1)}, r"noise_levels\[1\] must be in"),
    ("annealed_langevin", {"steps_per_level": 0}, "steps_per_level"),
    ("ula", {"step_size": 0.0}, "step_size must be in"),
    ("ula", {"step_size": -1.0}, "step_size must be in"),
    ("ula", {"noise_level": -0.1}, "noise_level must be in"),
    ("ula", {"regularization": -1.0}, "regularization must be in"),
    ("ula", {"num_draws": 0}, "num_draws"),
    ("pnp_ula", {"box": (1.0, 0.0)}, "box must be"),
    ("pnp_ula", {"box_weight": -1.0}, "box_weight must be in"),
    ("mala", {"step_size": -0.1}, "step_size must be in"),
    ("mala", {"target_acceptance": 1.5}, "target_acceptance must be in"),
    ("smc", {"resample_threshold": 2.0}, "resample_threshold must be in"),
    ("smc", {"max_shift": 0.0}, "max_shift must be in"),
    ("smc", {"twist_variance": -1.0}, "twist_variance must be in"),
    ("smc", {"num_particles": 0}, "num_particles >= 1"),
    ("smc", {"num_particles": 2.5}, "num_particles must be an int"),
    ("split_gibbs", {"rho_fraction": 1.5}, "0 < rho_fraction < 1"),
    ("split_gibbs", {"thin": 0}, "thin >= 1"),
    ("split_gibbs", {"anneal_start": 0.5}, "anneal_start >= 1"),
    ("split_gibbs_smc", {"start": 0.5}, "start >= 1"),
    ("split_gibbs_smc", {"ess_threshold": 1.5}, "ess_threshold <= 1"),
    ("split_gibbs_smc", {"final_sweeps": 0}, "final_sweeps >= 1"),
]


@pytest.mark.parametrize("name, options, match", BAD_OPTIONS)
def test_invalid_options_are_refused_before_any_work(name, options, match):
    problem, y = _problem()
    CountingPrior.calls = 0
    with pytest.raises(ValueError, match=match):
        SAMPLERS[name](problem, y, num_samples=2, generator=torch.Generator().manual_seed(0), progress=False,
                       **options)
    assert CountingPrior.calls == 0


def test_every_registry_sampler_has_a_bad_option_case():
    assert set(SAMPLERS) - {name for name, _, _ in BAD_OPTIONS} == {"dirac"}  # dirac: tests/samplers/test_dirac.py


def test_check_number_intervals():
    assert check_number("a", 1, low=0.0, high=1.0) == 1.0
    with pytest.raises(ValueError, match=r"s: a must be in \(0.0, 1.0\), got 1.0"):
        check_number("a", 1.0, low=0.0, high=1.0, low_open=True, high_open=True, owner="s")
    with pytest.raises(ValueError, match="must be in"):
        check_number("a", math.inf, low=0.0, high=1.0)
    with pytest.raises(ValueError, match="must be a number"):
        check_number("a", None, low=0.0)
