"""A user's own Pyro model plugs into the samplers through the traced likelihood."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

from bayesinv import Gaussian, InverseProblem, PyroModelProblem
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, vp_linear
from bayesinv.samplers import SAMPLERS, sample_gibbs

MATRIX = torch.tensor([[1.0, 0.5], [0.2, 1.0], [0.7, 0.7]], dtype=torch.float64)


def _gaussian_pair():
    """The same linear-Gaussian problem as an InverseProblem and as a user's Pyro model."""
    prior = GaussianPrior(torch.tensor([0.5, -0.3], dtype=torch.float64), 0.5, schedule=vp_linear(60, 1e-3, 0.3))
    problem = InverseProblem(MatrixOperator(MATRIX), Gaussian(0.3), prior)

    def model(y=None):
        x = pyro.sample("x", prior)
        return pyro.sample("y", dist.Normal(x.reshape(-1, 2) @ MATRIX.T, 0.3).to_event(1), obs=y)

    return problem, PyroModelProblem(model, prior, measurement_shape=(3,))


def test_model_likelihood_equals_the_closed_form_of_the_same_problem(generator):
    problem, user = _gaussian_pair()
    x = torch.randn(5, 2, generator=generator, dtype=torch.float64)
    y = problem.simulate(x[:1], generator=generator)
    ll_u, grad_u = user.grad_log_likelihood(x, y)
    ll_p, grad_p = problem.grad_log_likelihood(x, y)  # closed form (Gaussian noise, linear operator)
    torch.testing.assert_close(ll_u, ll_p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_u, grad_p, rtol=1e-12, atol=1e-12)
    assert user.latent_names == [] and not user.closed_form_likelihood


@pytest.mark.parametrize("name, options", [("dps", {"guidance": "loglik", "guidance_scale": 0.05, "steps": 30}),
                                           ("smc", {"twist_variance": 0.0, "num_particles": 8, "steps": 30}),
                                           ("mala", {"steps": 40, "step_size": 0.05}),
                                           ("ula", {"steps": 40, "step_size": 0.01, "noise_level": 0.05})])
def test_a_user_model_samples_like_the_same_inverse_problem(name, options, generator):
    problem, user = _gaussian_pair()
    y = problem.simulate(problem.prior.sample_n(1, generator=generator), generator=generator)
    run = lambda p: SAMPLERS[name](p, y, num_samples=6, generator=torch.Generator().manual_seed(3),  # noqa: E731
                                   progress=False, **options)
    torch.testing.assert_close(run(user).samples, run(problem).samples, rtol=1e-9, atol=1e-10)


# -- Poisson counts with a latent detector gain: no closed form, no operator ---------------------------------------
PRIOR = GaussianPrior(torch.tensor([1.5, 1.0], dtype=torch.float64),
                      torch.tensor([[0.3, 0.1], [0.1, 0.2]], dtype=torch.float64), schedule=vp_linear(100, 1e-3, 0.2))


def poisson_model(y=None):
    x = pyro.sample("x", PRIOR)
    gain = pyro.sample("gain", dist.LogNormal(math.log(20.0), 0.1))
    rate = gain.reshape(-1, 1) * F.softplus(x.reshape(-1, 2) @ MATRIX.T)
    return pyro.sample("y", dist.Poisson(rate).to_event(1), obs=y)


def _poisson_setup(generator):
    user = PyroModelProblem(poisson_model, PRIOR, measurement_shape=(3,), name="poisson-gain")
    truth = torch.tensor([[2.6, 0.2]], dtype=torch.float64)
    y = torch.poisson(20.0 * F.softplus(truth @ MATRIX.T), generator=generator)
    # reference posterior mean at gain = 20 by self-normalised importance sampling from the prior (2-D: exact enough)
    draws = PRIOR.sample_n(400_000, generator=torch.Generator().manual_seed(7))
    log_w = user.log_likelihood(draws, y, gain=torch.full((draws.shape[0],), 20.0, dtype=torch.float64))
    w = torch.softmax(log_w, 0)
    mean = w @ draws
    std = (w @ (draws - mean) ** 2).sqrt()
    return user, y, mean, std


def test_the_traced_likelihood_of_a_user_model_is_poisson(generator):
    user, y, _, _ = _poisson_setup(generator)
    assert user.latent_names == ["gain"] and isinstance(user.latent_priors["gain"], dist.LogNormal)
    x = torch.randn(4, 2, generator=generator, dtype=torch.float64)
    gain = torch.tensor([10.0, 20.0, 30.0, 40.0], dtype=torch.float64)
    rate = gain[:, None] * F.softplus(x @ MATRIX.T)
    want = (y * rate.log() - rate - torch.lgamma(y + 1)).sum(1)
    torch.testing.assert_close(user.log_likelihood(x, y, gain=gain), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="gain"):
        user.log_likelihood(x, y)
    with pytest.raises(TypeError, match="no operator"):
        SAMPLERS["ddrm"](user, y, num_samples=2, generator=generator, progress=False, latents={"gain": 20.0})


@pytest.mark.parametrize("name, options, exact", [
    ("smc", {"num_particles": 64, "steps": 50}, True),
    ("mala", {"steps": 300, "num_draws": 50, "thin": 4, "step_size": 0.05}, True),
    ("dps", {"steps": 100, "guidance_scale": 0.02}, False),
    ("annealed_langevin", {"steps": 5, "steps_per_level": 40, "step_size": 1e-3, "noise_levels": (1.0, 0.05),
                           "likelihood_inflation": "none"}, False),
    ("ula", {"steps": 400, "num_draws": 50, "thin": 4, "step_size": 2e-3, "noise_level": 0.05}, False),
    ("pnp_ula", {"steps": 400, "num_draws": 50, "thin": 4, "step_size": 2e-3, "noise_level": 0.05,
                 "box": (-5.0, 5.0)}, False)])
def test_samplers_run_on_a_user_poisson_model_with_a_latent_gain(name, options, exact, generator):
    """Exact samplers (SMC, MALA) find the reference posterior mean; the approximate ones move from the prior's
    mean toward it (the likelihood is read from the model)."""
    user, y, mean, std = _poisson_setup(generator)
    post = SAMPLERS[name](user, y, num_samples=64, generator=torch.Generator().manual_seed(1), progress=False,
                          latents={"gain": 20.0}, **options)
    samples = post.samples.reshape(-1, 2)
    assert bool(torch.isfinite(samples).all()) and post.problem["operator"] == "pyro model"
    got = samples.mean(0)
    prior_gap = float(((PRIOR.mean - mean) / std).norm())
    gap = float(((got - mean) / std).norm())
    assert prior_gap > 1.0  # the data move the posterior away from the prior
    if exact:
        assert gap < 0.5, (got, mean, std)
    else:
        assert gap < 0.6 * prior_gap, (got, mean, std, prior_gap)


def test_gibbs_draws_the_latent_gain_of_a_user_model(generator):
    user, y, _, _ = _poisson_setup(generator)
    post = sample_gibbs(
        user, y, num_samples=4, sweeps=3, burn_in=1, x_sampler="mala", x_options={"steps": 30, "step_size": 0.05},
        generator=torch.Generator().manual_seed(0), progress=False)
    gains = torch.tensor(post.extras["latents"]["gain"])
    assert gains.shape == (4, 2) and bool((gains > 10).all() and (gains < 40).all())
