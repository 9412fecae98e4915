"""The sampler driver and the pieces every sampler reads from its owner, against closed forms: ancestral
transitions (priors/schedules.py), likelihood gradients (problem.py), operator norms (operators/base.py), the loop
(samplers/_driver.py)."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.errors import SamplerDivergence, ShapeError
from bayesinv.noise import Poisson
from bayesinv.operators import Identity
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.priors import GaussianPrior, ve_geometric, vp_linear
from bayesinv._validation import check_step
from bayesinv.operators.base import operator_norm_squared
from bayesinv.priors.schedules import ancestral_coefficients, timesteps
from bayesinv.problem import squared_residual
from bayesinv.samplers import SAMPLERS
from bayesinv.samplers._driver import draw_in_chunks
from tests.samplers.helpers import DFTOperator


def test_ancestral_matches_ddpm_posterior_for_consecutive_steps():
    s = vp_linear(30, 1e-3, 0.2)
    beta, abar = s.betas.numpy(), s.alphas_cumprod.numpy()
    for t in (29, 10, 1):
        c = ancestral_coefficients(s, t, t - 1)
        # Ho et al. (2020) eq. 7
        assert c.coef_xt == pytest.approx(math.sqrt(1 - beta[t]) * (1 - abar[t - 1]) / (1 - abar[t]), rel=1e-12)
        assert c.coef_x0 == pytest.approx(math.sqrt(abar[t - 1]) * beta[t] / (1 - abar[t]), rel=1e-12)
        assert c.variance == pytest.approx(beta[t] * (1 - abar[t - 1]) / (1 - abar[t]), rel=1e-12)
    last = ancestral_coefficients(s, 0, -1)
    assert (last.coef_xt, last.coef_x0, last.variance) == (0.0, pytest.approx(1.0), 0.0)


@pytest.mark.parametrize("schedule", [vp_linear(20, 1e-3, 0.3), ve_geometric(20, 0.05, 5.0)])
def test_ancestral_transition_is_the_gaussian_conditional(schedule):
    """Monte Carlo-free check: q(x_s|x_t,x0) from the joint Gaussian of (x_s, x_t) given x0 (dense algebra)."""
    t, s = 15, 6
    a_t, s_t = float(schedule.alpha[t]), float(schedule.sigma[t])
    a_s, s_s = float(schedule.alpha[s]), float(schedule.sigma[s])
    # x_s = a_s x0 + s_s e1, x_t = a_t x0 + sigma_t e: Cov(x_s, x_t) = s_s^2 * (a_t/a_s) under the Markov chain
    cov_st = s_s**2 * a_t / a_s
    gain = cov_st / s_t**2
    c = ancestral_coefficients(schedule, t, s)
    assert c.coef_xt == pytest.approx(gain, rel=1e-12)
    assert c.coef_x0 == pytest.approx(a_s - gain * a_t, rel=1e-10)
    assert c.variance == pytest.approx(s_s**2 - gain * cov_st, rel=1e-10)
    with pytest.raises(ValueError, match="s < t"):
        ancestral_coefficients(schedule, 3, 3)


def test_timesteps_descend_and_cover_the_schedule():
    s = vp_linear(100)
    ts = timesteps(s, 10)
    assert ts[0] == 99 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:], strict=False))
    assert len(timesteps(s, None)) == 100


@pytest.mark.parametrize("noise", [Gaussian(0.3), Poisson(gain=20.0)])
def test_grad_log_likelihood_matches_closed_form(noise, generator):
    matrix = torch.rand(3, 5, generator=generator, dtype=torch.float64)
    problem = InverseProblem(MatrixOperator(matrix), noise)
    x = torch.rand(4, 5, generator=generator, dtype=torch.float64) + 0.5
    y = problem.simulate(x[:1], generator=generator)
    ll, grad = problem.grad_log_likelihood(x, y)
    mean = x @ matrix.T
    if isinstance(noise, Gaussian):
        expected = ((y - mean) / 0.09) @ matrix
    else:  # d/dx [k log(g A x) - g A x] = A^T (k / (A x) - g), k = g y
        expected = (20.0 * y / mean - 20.0) @ matrix
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-10)
    assert ll.shape == (4,)


def test_complex_measurement_likelihood_equals_stacked_real_problem(generator):
    op = DFTOperator(6, [0, 1, 4])
    matrix = op.to_matrix()
    stacked = MatrixOperator(torch.cat([matrix.real, matrix.imag]))
    x = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    y = InverseProblem(op, Gaussian(0.2)).simulate(x[:1], generator=generator)
    y_real = torch.cat([y.real, y.imag], 1)
    ll_c, g_c = InverseProblem(op, Gaussian(0.2)).grad_log_likelihood(x, y)
    ll_r, g_r = InverseProblem(stacked, Gaussian(0.2)).grad_log_likelihood(x, y_real)
    assert torch.allclose(ll_c, ll_r, rtol=1e-10) and torch.allclose(g_c, g_r, rtol=1e-8, atol=1e-10)
    assert torch.allclose(squared_residual(y, op(x)), ((y_real - stacked(x)) ** 2).sum(1), rtol=1e-10)


def test_operator_norm_by_power_iteration_matches_dense(generator):
    matrix = torch.randn(4, 7, generator=generator, dtype=torch.float64)

    class NoSVD(MatrixOperator):
        def svd(self):
            raise NotImplementedError

    value = operator_norm_squared(NoSVD(matrix), torch.zeros(1, dtype=torch.float64), generator=generator,
                                    iterations=300)
    assert value == pytest.approx(float(np.linalg.norm(matrix.numpy(), 2)) ** 2, rel=1e-6)
    assert operator_norm_squared(MatrixOperator(matrix), torch.zeros(1, dtype=torch.float64),
                                   generator=generator) == pytest.approx(value, rel=1e-6)


def test_check_step_raises_divergence_with_last_good():
    good = torch.ones(2, 3)
    bad = good.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(SamplerDivergence, match="step 7") as info:
        check_step("demo", 7, bad, last_good=good)
    assert info.value.step == 7 and torch.equal(info.value.last_good, good)
    assert check_step("demo", 0, good) is good


def test_draw_in_chunks_concatenates_and_validates():
    calls = []

    def draw(start, n):
        calls.append((start, n))
        return torch.arange(start, start + n, dtype=torch.float64)[:, None], {"n": n}

    out, extras = draw_in_chunks(7, 3, draw)
    assert calls == [(0, 3), (3, 3), (6, 1)] and out[:, 0].tolist() == list(range(7))
    assert [e["n"] for e in extras] == [3, 3, 1]
    with pytest.raises(ValueError, match="batch_size"):
        draw_in_chunks(3, 0, draw)


def test_resolve_latents_errors_and_broadcast():
    problem = InverseProblem(Identity((2,)), Gaussian(pyro.distributions.LogNormal(0.0, 1.0)))
    like = torch.zeros(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma"):
        problem.resolve_latents(None, 3, like)
    with pytest.raises(ValueError, match="not latent sites"):
        problem.resolve_latents({"sigma": 0.1, "width": 1.0}, 3, like)
    with pytest.raises(ShapeError, match="shape"):
        problem.resolve_latents({"sigma": torch.ones(2)}, 3, like)
    assert problem.resolve_latents({"sigma": 0.1}, 3, like)["sigma"].shape == (3,)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_rejects_bad_arguments(name):
    prior = GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(20))
    problem = InverseProblem(Identity((2,)), Gaussian(0.1), prior)
    y = torch.zeros(1, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="generator"):
        SAMPLERS[name](problem, y, num_samples=2, generator=0, progress=False)
    with pytest.raises(ValueError, match="num_samples"):
        SAMPLERS[name](problem, y, num_samples=0, generator=g, progress=False)
    with pytest.raises(ShapeError, match="y must have shape"):
        SAMPLERS[name](problem, torch.zeros(1, 3, dtype=torch.float64), num_samples=2, generator=g, progress=False)
    with pytest.raises(TypeError, match="InverseProblem"):
        SAMPLERS[name](object(), y, num_samples=2, generator=g, progress=False)


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"dirac"}))  # dirac needs a trained model (test_dirac*)
def test_every_sampler_records_metadata_and_is_reproducible(name):
    prior = GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(20, 1e-3, 0.4))
    problem = InverseProblem(Identity((2,)), Gaussian(0.5), prior)
    y = torch.ones(1, 2, dtype=torch.float64)
    options = {"steps": 10} if name != "annealed_langevin" else {"steps": 3, "steps_per_level": 3}
    if name in ("ula", "pnp_ula"):
        options["noise_level"] = 0.1
    seen = []
    posts = [SAMPLERS[name](problem, y, num_samples=3, generator=torch.Generator().manual_seed(5), progress=False,
                            callback=lambda i, x, x0: seen.append(i), **options) for _ in range(2)]
    assert torch.equal(posts[0].samples, posts[1].samples)
    post = posts[0]
    assert post.samples.shape[0] == 3 and post.samples.shape[2:] == (2,)
    assert post.sampler and post.seed == 5 and post.nfe > 0 and post.wall_time > 0
    assert post.problem["noise"].startswith("Gaussian") and seen and seen[0] == 0


def test_ctrl_c_propagates_and_never_returns_partial_chains():
    """Interrupting a chunked run raises KeyboardInterrupt, whichever chunk it hits: no partial result."""
    calls = []

    def draw(start, n):
        calls.append(start)
        if start >= 4:
            raise KeyboardInterrupt
        return torch.full((n, 2), float(start)), {"start": start}

    with pytest.raises(KeyboardInterrupt):
        draw_in_chunks(10, 2, draw)
    assert calls == [0, 2, 4]


def test_ctrl_c_inside_a_sampler_propagates():
    prior = GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(20))
    problem = InverseProblem(Identity((2,)), Gaussian(0.1), prior)

    seen = []

    def interrupt(step, x, x0_hat):  # Ctrl-C during the second chunk of chains, after the first finished
        seen.append(step)
        if len(seen) == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SAMPLERS["dps"](problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=4, batch_size=2, steps=10,
                        generator=torch.Generator().manual_seed(0), progress=False, callback=interrupt)
    assert seen == list(range(10)) + [0, 1, 2]
