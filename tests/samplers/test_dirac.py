"""Dirac sampler: the update against its closed-form law with an oracle network, wiring, errors, trained models."""

import math

import pytest
import scipy.stats
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.diagnostics.hallucination import data_consistency
from bayesinv.errors import SamplerDivergence
from bayesinv.noise import Poisson
from bayesinv.operators.blur import Blur
from bayesinv.operators.degradation import BlurDegradation, GeometricNoise, InpaintDegradation
from bayesinv.operators.inpaint import Inpaint, random_mask
from bayesinv.operators.registry import make_operator
from bayesinv.samplers import SAMPLERS
from bayesinv.samplers.dirac import (DIRAC_PRESETS, DiracModel, _predict_with_dc, dirac_times, dirac_update,
                                     sample_dirac)

SHAPE = (1, 4, 4)
NOISE = GeometricNoise(0.01, 0.05)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _x0():
    return torch.rand(1, *SHAPE, generator=_gen(11), dtype=torch.float64)


def _degradations():
    return [BlurDegradation(SHAPE, 1.0, size=3, knots=[(0, 0), (0.5, 0.3), (1, 1)]),
            InpaintDegradation(SHAPE, random_mask(SHAPE[1:], 0.5, _gen(2)), order="random", seed=3)]


def _oracle(x0, degradation):
    return DiracModel(lambda y_t, t: x0.expand_as(y_t).clone(), degradation, NOISE, "oracle")


def test_time_grid_and_early_stopping():
    assert len(dirac_times(50, 0.25)) == 38  # t' = 0.24 < 0.25 ends the loop (the authors' deblur PO)
    assert dirac_times(50, 1.0) == [(1.0, 0.98, True)]  # Dirac-DO: one network evaluation
    full = dirac_times(4, 0.0)
    assert [t for t, _, _ in full] == [1.0, 0.75, 0.5, 0.25] and full[-1] == (0.25, 0.0, True)
    assert not any(last for _, _, last in full[:-1])


@pytest.mark.parametrize("degradation", _degradations(), ids=["blur", "inpaint"])
def test_oracle_update_reproduces_the_forward_marginals(degradation):
    """Independent y_1 ~ A_1 x0 + sigma_1 z pushed through the update with x0_hat = x0: at every t, the mean is
    A_t x0 and the variance follows v' = (s'^2/s^2)^2 v + s^2 - s'^2 exactly (Euler-Maruyama of the reverse SDE)."""
    x0 = _x0()
    chains, steps = 20000, 10
    g = _gen(5)
    y = degradation.apply(x0, 1.0) + NOISE.std(1.0) * torch.randn(chains, *SHAPE, generator=g, dtype=torch.float64)
    var = NOISE.std(1.0) ** 2
    for t, t_next, _ in dirac_times(steps, 0.0):
        z = torch.randn(chains, *SHAPE, generator=g, dtype=torch.float64)
        y = dirac_update(y, x0.expand_as(y), t, t_next, degradation=degradation, noise_schedule=NOISE, noise=z)
        s2, s2n = NOISE.std(t) ** 2, NOISE.std(t_next) ** 2
        var = (s2n / s2) ** 2 * var + s2 - s2n
        dev = (y - degradation.apply(x0, t_next)).reshape(chains, -1)
        mean_err = dev.mean(0).abs().max()
        assert float(mean_err) < 4.5 * math.sqrt(var / chains)  # 16 pixels, ~4.5 sd
        # pooled variance over the 16 pixels: relative sd sqrt(2 / (16 n))
        assert float(dev.var(0).mean()) == pytest.approx(var, rel=5 * math.sqrt(2 / (16 * chains)))


def test_oracle_recursion_converges_to_forward_variance_as_dt_shrinks():
    errors = []
    for steps in (10, 100, 1000):
        var = NOISE.std(1.0) ** 2
        for t, t_next, _ in dirac_times(steps, 0.0):
            s2, s2n = NOISE.std(t) ** 2, NOISE.std(t_next) ** 2
            var = (s2n / s2) ** 2 * var + s2 - s2n
        errors.append(abs(var / NOISE.std(0.0) ** 2 - 1))
    assert errors[0] > 9 * errors[1] > 81 * errors[2] > 0  # first order in dt


@pytest.mark.parametrize("degradation", _degradations(), ids=["blur", "inpaint"])
def test_sampler_given_one_measurement_follows_the_conditional_law(degradation):
    """Chains share y_1 = A_1 x0 + e_1; with the oracle, y_0 = x0 + (s_0^2 / s_1^2) e_1 + noise whose variance
    follows v' = (s'^2/s^2)^2 v + s^2 - s'^2 from v = 0 (the coefficient product telescopes)."""
    x0 = _x0()
    e1 = NOISE.std(1.0) * torch.randn(1, *SHAPE, generator=_gen(9), dtype=torch.float64)
    y = degradation.apply(x0, 1.0) + e1
    problem = InverseProblem(degradation.operator_at(1.0), Gaussian(0.05))
    steps, n = 8, 20000
    post = sample_dirac(problem, y, num_samples=n, model=_oracle(x0, degradation), variant="po", steps=steps,
                        stop_time=0.0, dc_step=0.0, last="iterate", generator=_gen(1), progress=False, batch_size=7000)
    assert post.nfe == steps and post.samples.shape == (n, 1, *SHAPE)
    var = 0.0
    for t, t_next, _ in dirac_times(steps, 0.0):
        s2, s2n = NOISE.std(t) ** 2, NOISE.std(t_next) ** 2
        var = (s2n / s2) ** 2 * var + s2 - s2n
    samples = post.samples[:, 0]
    expected_mean = x0 + (NOISE.std(0.0) / NOISE.std(1.0)) ** 2 * e1
    assert float((samples.mean(0) - expected_mean[0]).abs().max()) < 4.5 * math.sqrt(var / n)
    assert float(samples.var(0).mean()) == pytest.approx(var, rel=5 * math.sqrt(2 / (16 * n)))


def test_distortion_optimised_returns_the_network_estimate_at_the_measurement():
    deg = _degradations()[0]
    calls = []

    def denoiser(y_t, t):
        calls.append(float(t[0]))
        return 2.0 * y_t

    model = DiracModel(denoiser, deg, NOISE)
    y = deg.apply(_x0(), 1.0)
    post = sample_dirac(InverseProblem(deg.operator_at(1.0), Gaussian(0.05)), y, num_samples=2, model=model,
                        variant="do", generator=_gen(), progress=False)
    assert calls == [1.0] and post.nfe == 1
    assert torch.equal(post.samples[:, 0], 2.0 * y.expand(2, *SHAPE))
    assert post.settings["stop_time"] == DIRAC_PRESETS["blur"]["do"]["stop_time"]


@pytest.mark.parametrize("scaling", ["absolute", "relative"])
def test_data_consistency_gradient_matches_closed_form(scaling):
    """With a linear network Phi(y) = c y the penalty's gradient is explicit."""
    deg = _degradations()[0]
    op = deg.operator_at(1.0)
    c, dc, sigma = 0.7, 0.5, NOISE.sigma_max
    model = DiracModel(lambda y_t, t: c * y_t, deg, NOISE)
    y_meas = torch.randn(1, *SHAPE, generator=_gen(3), dtype=torch.float64)
    y_t = torch.randn(3, *SHAPE, generator=_gen(4), dtype=torch.float64)
    x0_hat, grad = _predict_with_dc(model, y_t, 0.6, op, y_meas, dc, scaling)
    resid = y_meas - op(c * y_t)
    if scaling == "absolute":
        expected = -dc * c * op.adjoint(resid) / sigma**2
    else:
        expected = -dc * c * op.adjoint(resid) / resid.reshape(3, -1).norm(dim=1).reshape(3, 1, 1, 1)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x0_hat, c * y_t)
    # the guided step moves y_t against the gradient by (sigma_t^2 - sigma_t'^2)
    z = torch.zeros_like(y_t)
    plain = dirac_update(y_t, x0_hat, 0.6, 0.5, degradation=deg, noise_schedule=NOISE, noise=z)
    guided = dirac_update(y_t, x0_hat, 0.6, 0.5, degradation=deg, noise_schedule=NOISE, noise=z, dc_gradient=grad)
    torch.testing.assert_close(plain - guided, (NOISE.std(0.6) ** 2 - NOISE.std(0.5) ** 2) * grad)


def test_errors_name_the_problem():
    deg = _degradations()[0]
    model = _oracle(_x0(), deg)
    y = deg.apply(_x0(), 1.0)
    kw = dict(num_samples=1, model=model, generator=_gen(), progress=False)
    with pytest.raises(ValueError, match="differs from the model's blur degradation"):
        sample_dirac(InverseProblem(Blur.gaussian(SHAPE, 0.5, 3), Gaussian(0.05)), y, **kw)
    with pytest.raises(ValueError, match="noise sigma 0.1 differs from the model's sigma_max=0.05"):
        sample_dirac(InverseProblem(deg.operator_at(1.0), Gaussian(0.1)), y, **kw)
    with pytest.raises(ValueError, match="Gaussian noise of known sigma"):
        sample_dirac(InverseProblem(deg.operator_at(1.0), Poisson(100.0)), y.clamp_min(0), **kw)
    problem = InverseProblem(deg.operator_at(1.0), Gaussian(0.05))
    with pytest.raises(ValueError, match="variant must be 'po'"):
        sample_dirac(problem, y, variant="fast", **kw)
    with pytest.raises(ValueError, match=r"stop_time must lie in \[0, 1\]"):
        sample_dirac(problem, y, stop_time=1.5, **kw)
    with pytest.raises(ValueError, match="dc_scaling must be"):
        sample_dirac(problem, y, dc_scaling="huge", **kw)
    with pytest.raises(TypeError, match="model must be a DiracModel"):
        sample_dirac(problem, y, num_samples=1, model=3, generator=_gen(), progress=False)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        sample_dirac(problem, y, steps=0, **kw)


def test_divergence_is_reported_with_the_step():
    deg = _degradations()[0]
    count = []

    def denoiser(y_t, t):
        count.append(1)
        return y_t * (float("nan") if len(count) == 3 else 1.0)

    problem = InverseProblem(deg.operator_at(1.0), Gaussian(0.05))
    with pytest.raises(SamplerDivergence, match="dirac diverged at step 2"):
        sample_dirac(problem, deg.apply(_x0(), 1.0), num_samples=2, model=DiracModel(denoiser, deg, NOISE),
                     steps=5, stop_time=0.0, dc_step=0.0, generator=_gen(), progress=False)


def test_registered_and_reproducible():
    assert SAMPLERS["dirac"] is sample_dirac
    deg = _degradations()[1]
    problem = InverseProblem(Inpaint(SHAPE, deg.observed, output="pixels"), Gaussian(0.05))
    y = problem.simulate(_x0(), generator=_gen(2))
    model = DiracModel(lambda y_t, t: 0.5 * y_t, deg, NOISE)
    runs = [sample_dirac(problem, y, num_samples=3, model=model, steps=6, stop_time=0.0, generator=_gen(seed),
                         progress=False, batch_size=2).samples for seed in (8, 8, 9)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert runs[0].shape == (3, 1, *SHAPE)


# -- the shipped models ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name,problem_name,steps",
                         [("dirac-blur32", "deblur", None), ("dirac-inpaint32", "inpaint", 30)])
def test_trained_posterior_samples_are_consistent_with_the_measurement(name, problem_name, steps):
    """Dirac-PO samples pass the chi^2 data-consistency test ||y - A x||^2 / sigma^2 ~ chi^2_m (exact draws would)."""
    from bayesinv.data.phantoms import phantom_dataset

    op = make_operator(problem_name, (1, 32, 32))
    problem = InverseProblem(op, Gaussian(0.05))
    x = phantom_dataset("test", 2, 32).images.double()
    stats = []
    for i in range(2):
        y = problem.simulate(x[i : i + 1], generator=_gen(100 + i))
        post = sample_dirac(problem, y, num_samples=3, model=name, steps=steps, generator=_gen(i), progress=False)
        test = data_consistency(op, problem.noise, y, post.samples[:, 0])
        assert not bool(test.rejected.any()), test.pvalues
        stats.append(test.statistic)
    stats = torch.cat(stats)
    m = op.out_dim
    # the mean of 6 statistics against chi^2_m: sd sqrt(2m / 6)
    assert abs(float(stats.mean()) - m) < 4 * math.sqrt(2 * m / 6)
    assert scipy.stats.kstest(stats.numpy(), scipy.stats.chi2(m).cdf).pvalue > 1e-3


@pytest.mark.slow
def test_shipped_model_is_chosen_by_the_operator_and_beats_the_measurement():
    from bayesinv.data.phantoms import phantom_dataset

    op = make_operator("deblur", (1, 32, 32))
    problem = InverseProblem(op, Gaussian(0.05))
    x = phantom_dataset("test", 1, 32).images.double()
    y = problem.simulate(x, generator=_gen(7))
    post = sample_dirac(problem, y, num_samples=2, variant="do", generator=_gen(), progress=False)
    assert post.settings["model"] == "dirac-blur32" and post.nfe == 1
    assert float(((post.samples[:, 0] - x) ** 2).mean()) < 0.5 * float(((y - x) ** 2).mean())
    with pytest.raises(ValueError, match="no shipped Dirac model matches"):
        sample_dirac(InverseProblem(make_operator("deblur", (1, 32, 32), std=2.0), Gaussian(0.05)), y,
                     num_samples=1, generator=_gen(), progress=False)
