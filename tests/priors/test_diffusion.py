"""DiffusionPrior: the denoiser/score contract against the exact mixture prior, DDPM/DDIM sampling, errors."""

import pytest
import torch
from torch import nn

from bayesinv.errors import NoDensityError, SamplerDivergence
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.mixture import GaussianMixturePrior
from bayesinv.priors.networks import x0_to_output
from bayesinv.priors.schedules import ve_geometric, vp_cosine, vp_linear
from bayesinv.priors.schedules import ancestral_coefficients, karras_timesteps, timesteps

SHAPE = (1, 2, 2)


class ExactNetwork(nn.Module):
    """The exact denoiser of an analytic prior, written as a network of the given parametrisation.

    It undoes the denoiser's input scaling ``c_in`` and returns what an ideal eps/x0/v network outputs, so a
    DiffusionPrior around it runs the same code path as around a trained U-Net.
    """

    def __init__(self, prior, parametrisation):
        super().__init__()
        self.prior, self.parametrisation = prior, parametrisation
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))  # gives the prior a device and dtype

    def forward(self, x_in, t):
        t = t.round().long().cpu()
        alpha, sigma = self.prior.schedule.coefficients(t, x_in)
        x_t = x_in * torch.sqrt(alpha**2 + sigma**2)
        x0 = self.prior.denoise(x_t, t)
        return x0_to_output(self.parametrisation, x0, x_t, alpha, sigma)


def _mixture(schedule):
    means = torch.tensor([[2.0, -1.0, 0.5, 3.0], [-2.0, 1.0, -0.5, -3.0], [0.0, 4.0, 0.0, 0.0]])
    return GaussianMixturePrior(torch.tensor([0.5, 0.3, 0.2]), means.reshape(3, *SHAPE),
                                torch.tensor([0.3, 0.5, 0.2]), schedule=schedule, event_shape=SHAPE)


@pytest.mark.parametrize("schedule", [vp_linear(1000), vp_cosine(1000), ve_geometric(1000, 0.01, 20.0)],
                         ids=["vp_linear", "vp_cosine", "ve"])
@pytest.mark.parametrize("parametrisation", ["eps", "x0", "v"])
def test_contract_matches_exact_mixture(schedule, parametrisation):
    exact = _mixture(schedule)
    prior = DiffusionPrior(ExactNetwork(exact, parametrisation), schedule, parametrisation, event_shape=SHAPE)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 10, 250, 500, 999])
    x0 = exact.sample_n(5, generator=g)
    x_t = schedule.add_noise(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    for method in ("denoise", "score", "eps"):
        torch.testing.assert_close(getattr(prior, method)(x_t, t), getattr(exact, method)(x_t, t),
                                   rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(prior.denoise(x_t[:1], 250), exact.denoise(x_t[:1], 250), rtol=1e-9, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("method, grid, steps", [("ddpm", "uniform", 200), ("ddim", "uniform", 200),
                                                 ("ddim", "karras", 100), ("heun", "karras", 40)])
def test_exact_denoiser_samples_the_mixture(method, grid, steps):
    """With the exact denoiser every sampler draws from the mixture (up to its discretisation of the 1000 steps)."""
    schedule = vp_linear(1000)
    exact = _mixture(schedule)
    prior = DiffusionPrior(ExactNetwork(exact, "eps"), schedule, "eps", event_shape=SHAPE)
    n = 1000
    draws = prior.sample_n(n, steps=steps, method=method, grid=grid,
                           generator=torch.Generator().manual_seed(1)).reshape(n, 4)
    dist = torch.cdist(draws, exact.means)
    label = dist.argmin(1)
    for k in range(3):
        w = float(exact.weights[k])
        frac = float((label == k).double().mean())
        assert abs(frac - w) < 4.5 * (w * (1 - w) / n) ** 0.5, (k, frac, w)
        comp = draws[label == k]
        var = float(exact.component_variances[k, 0])
        se_mean = (var / comp.shape[0]) ** 0.5
        assert (comp.mean(0) - exact.means[k]).abs().max() < 4.5 * se_mean
        se_var = var * (2 / comp.shape[0]) ** 0.5
        assert (comp.var(0) - var).abs().max() < 4.5 * se_var


def test_one_ddpm_and_ddim_step_by_hand():
    schedule = vp_linear(1000)
    exact = _mixture(schedule)
    prior = DiffusionPrior(ExactNetwork(exact, "v"), schedule, "v", event_shape=SHAPE)
    ddpm = prior.sample_n(2, steps=2, generator=torch.Generator().manual_seed(3))
    ddim = prior.sample_n(2, steps=2, method="ddim", generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, *SHAPE, generator=g, dtype=torch.float64)  # alpha_T^2 + sigma_T^2 = 1
    c = ancestral_coefficients(schedule, 999, 0)
    x0 = exact.denoise(x, 999)
    x_ddpm = c.coef_xt * x + c.coef_x0 * x0 + c.variance**0.5 * torch.randn(2, *SHAPE, generator=g,
                                                                                dtype=torch.float64)
    eps = (x - float(schedule.alpha[999]) * x0) / float(schedule.sigma[999])
    x_ddim = float(schedule.alpha[0]) * x0 + float(schedule.sigma[0]) * eps
    torch.testing.assert_close(ddpm, exact.denoise(x_ddpm, 0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ddim, exact.denoise(x_ddim, 0), rtol=1e-10, atol=1e-10)


def test_one_heun_interval_by_hand_on_the_karras_grid():
    schedule = vp_linear(1000)
    exact = _mixture(schedule)
    prior = DiffusionPrior(ExactNetwork(exact, "x0"), schedule, "x0", event_shape=SHAPE)
    ts = karras_timesteps(schedule, 3)
    heun = prior.sample_n(2, steps=3, method="heun", grid="karras", generator=torch.Generator().manual_seed(4))
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    alpha = [float(schedule.alpha[t]) for t in ts]
    s = [float(schedule.sigma[t]) / a for t, a in zip(ts, alpha)]
    y = x / alpha[0]
    for i in range(2):
        d = (y - exact.denoise(alpha[i] * y, ts[i])) / s[i]
        y_euler = y + (s[i + 1] - s[i]) * d
        y = y + (s[i + 1] - s[i]) / 2 * (d + (y_euler - exact.denoise(alpha[i + 1] * y_euler, ts[i + 1])) / s[i + 1])
    torch.testing.assert_close(heun, exact.denoise(alpha[2] * y, ts[2]), rtol=1e-10, atol=1e-10)


def test_karras_timesteps_put_the_steps_at_low_noise_and_name_bad_input():
    schedule = vp_linear(1000)
    ts = karras_timesteps(schedule, 26)
    levels = schedule.noise_level(torch.tensor(ts))
    assert ts[0] == 999 and ts[-1] == 0 and ts == sorted(set(ts), reverse=True)
    assert (levels < 0.2).sum() == 5 and (schedule.noise_level(torch.tensor(timesteps(schedule, 26))) < 0.2).sum() == 2
    ratios = (levels[:-1] / levels[1:]).log()  # rho = 7: the log step grows as the level falls
    assert (ratios[1:] - ratios[:-1] > -0.05).all()
    coarse = karras_timesteps(vp_linear(10), 10)  # repeats dropped: fewer than asked on a coarse schedule
    assert coarse[0] == 9 and coarse[-1] == 0 and len(coarse) < 10 and coarse == sorted(set(coarse), reverse=True)
    with pytest.raises(ValueError, match=r"num must be an int in \[2, 1000\], got 1"):
        karras_timesteps(schedule, 1)
    with pytest.raises(ValueError, match="rho must be positive"):
        karras_timesteps(schedule, 5, rho=0.0)


def test_sample_shapes_reproducibility_and_errors():
    schedule = vp_linear(50)
    prior = DiffusionPrior(ExactNetwork(_mixture(schedule), "eps"), schedule, "eps", event_shape=SHAPE)
    a = prior.sample((2, 3), steps=4, generator=torch.Generator().manual_seed(0), batch_size=4)
    b = prior.sample((2, 3), steps=4, generator=torch.Generator().manual_seed(0), batch_size=4)
    assert a.shape == (2, 3, *SHAPE)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert prior.sample_n(0, steps=2).shape == (0, *SHAPE)
    with pytest.raises(ValueError, match="method must be one of"):
        prior.sample_n(1, steps=2, method="euler")
    with pytest.raises(ValueError, match="grid must be one of"):
        prior.sample_n(1, steps=2, grid="log")
    with pytest.raises(ValueError, match="heun needs steps >= 2"):
        prior.sample_n(1, steps=1, method="heun")
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 50\], got 51"):
        prior.sample_n(1, steps=51)
    with pytest.raises(NoDensityError, match="no tractable density"):
        prior.log_prob(a[0])
    with pytest.raises(ValueError, match="event_shape is needed"):
        DiffusionPrior(nn.Linear(2, 2), schedule)
    assert "parametrisation='eps'" in repr(prior)


class _NaNAfter(nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x, t):
        self.calls += 1
        return torch.full_like(x, float("nan")) if self.calls > 2 else torch.zeros_like(x)


def test_divergence_names_the_step():
    prior = DiffusionPrior(_NaNAfter(), vp_linear(20), "eps", event_shape=SHAPE)
    with pytest.raises(SamplerDivergence, match="diverged at step 2") as info:
        prior.sample_n(2, steps=10, generator=torch.Generator().manual_seed(0))
    assert info.value.last_good is None


@pytest.mark.parametrize("steps", [2, 10])
def test_heun_divergence_names_the_step_including_the_last_denoising(steps):
    """NaN from the third network call on: Heun's second interval (steps=10) or its final ``D`` (steps=2)."""
    prior = DiffusionPrior(_NaNAfter(), vp_linear(20), "eps", event_shape=SHAPE)
    with pytest.raises(SamplerDivergence, match="diverged at step 1"):
        prior.sample_n(2, steps=steps, method="heun", generator=torch.Generator().manual_seed(0))
