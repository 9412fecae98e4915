"""Every baseline through the registry: a point-mass Posterior with metadata; bad input raises clearly."""

from __future__ import annotations

import pytest
import torch

from bayesinv import Gaussian, InverseProblem, ShapeError
from bayesinv.builders import run_sampler
from bayesinv.operators import make_operator
from bayesinv.priors import GaussianPrior
from bayesinv.samplers.baselines import BASELINES

OPTIONS = {"tv": {"max_iter": 20}, "wavelet_l1": {"max_iter": 20}, "pnp_admm": {"max_iter": 5},
           "csgm": {"steps": 3, "restarts": 2}}


@pytest.fixture(scope="module")
def problem_and_y():
    op = make_operator("deblur", (1, 32, 32), std=1.5)
    prior = GaussianPrior(torch.full((1024,), 0.4), 0.05, event_shape=(1, 32, 32))
    problem = InverseProblem(op, Gaussian(0.05), prior)
    x = torch.full((1, 1, 32, 32), 0.4, dtype=torch.float64)
    return problem, problem.simulate(x, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_point_posterior_contract(problem_and_y, name):
    problem, y = problem_and_y
    post = run_sampler(name, problem, y, num_samples=1, steps=None, generator=torch.Generator().manual_seed(0),
                       options=OPTIONS.get(name, {}))
    assert post.point_estimate and post.extras["point_estimate"] is True
    assert post.samples.shape == (1, 1, 1, 32, 32) and post.sampler == name
    assert post.wall_time > 0 and torch.isfinite(post.samples).all()
    assert float(post.std().abs().max()) == 0.0


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_bad_measurement_shape(problem_and_y, name):
    problem, _ = problem_and_y
    with pytest.raises(ShapeError, match="y must have shape"):
        BASELINES[name](problem, torch.zeros(1, 1, 16, 16, dtype=torch.float64))


def test_non_gaussian_noise_needs_explicit_weight(problem_and_y):
    from bayesinv import Poisson

    problem, y = problem_and_y
    poisson = InverseProblem(problem.operator, Poisson(100.0))
    with pytest.raises(ValueError, match="needs Gaussian noise"):
        BASELINES["tv"](poisson, y.clamp_min(0))
