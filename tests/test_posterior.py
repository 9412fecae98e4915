"""Posterior summaries through arviz (0.x or 1.x) and the arviz export, checked against numpy references."""

from __future__ import annotations

import arviz as az
import numpy as np
import pyro.distributions as dist
import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.posterior import Posterior
from bayesinv._arviz import ARVIZ_MAJOR
from bayesinv.errors import ShapeError
from bayesinv.operators import Blur
from bayesinv.priors import GaussianPrior
from bayesinv.samplers.gibbs import sample_gibbs

F64 = torch.float64


def _numpy_hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    """The narrowest window holding floor(prob * n) + 1 sorted draws (arviz's definition)."""
    ordered = np.sort(values)
    inside = int(np.floor(prob * len(ordered)))
    widths = ordered[inside:] - ordered[: len(ordered) - inside]
    start = int(np.argmin(widths))
    return float(ordered[start]), float(ordered[start + inside])


def test_hdi_interval_is_the_narrowest_window_of_the_given_mass():
    draws = torch.from_numpy(np.random.default_rng(0).gamma(2.0, size=(3, 200, 2, 2)))  # skewed: HDI != ETI
    lower, upper = Posterior(draws).interval(0.8, kind="hdi")
    flat = draws.reshape(600, 4).numpy()
    reference = np.array([_numpy_hdi(flat[:, j], 0.8) for j in range(4)])
    np.testing.assert_allclose(lower.reshape(-1).numpy(), reference[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(upper.reshape(-1).numpy(), reference[:, 1], rtol=0, atol=1e-12)
    eti_lower, _ = Posterior(draws).interval(0.8, kind="eti")
    assert not torch.allclose(lower, eti_lower)


def test_ess_of_independent_draws_is_near_their_number_and_of_a_sticky_chain_far_below():
    rng = np.random.default_rng(1)
    iid = torch.from_numpy(rng.normal(size=(4, 500, 3)))
    ess = Posterior(iid).ess()
    assert ess.shape == (3,) and bool(((ess > 1500) & (ess < 2700)).all())
    # an AR(1) chain with rho = 0.9 has ESS ~ n (1 - rho) / (1 + rho) ~ 0.053 n
    ar = np.zeros((4, 2000, 1))
    noise = rng.normal(size=ar.shape)
    for t in range(1, ar.shape[1]):
        ar[:, t] = 0.9 * ar[:, t - 1] + noise[:, t]
    sticky = float(Posterior(torch.from_numpy(ar)).ess()[0])
    assert 0.025 * 8000 < sticky < 0.1 * 8000
    rhat = Posterior(iid).rhat()
    assert bool((rhat < 1.01).all())
    shifted = iid.clone()
    shifted[0] += 3.0  # one chain stuck elsewhere
    assert bool((Posterior(shifted).rhat() > 1.2).all())


def _blind_gibbs_posterior():
    """Gibbs over a blur width and a noise level with a stand-in x-step (x near the truth)."""
    shape = (1, 6, 6)
    problem = InverseProblem(lambda width: Blur.gaussian(shape, width, size=5), Gaussian(dist.Uniform(0.02, 0.2)),
                             GaussianPrior(torch.tensor(0.5, dtype=F64), 0.1 * torch.eye(36, dtype=F64),
                                           event_shape=shape),
                             nuisance={"width": dist.Uniform(0.5, 2.5)})
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(1, *shape, generator=g, dtype=F64)
    y = problem.simulate(truth, generator=g, width=torch.tensor([1.3], dtype=F64),
                         sigma=torch.tensor([0.05], dtype=F64))

    def x_step(problem, y, latents, generator):
        n = latents["sigma"].shape[0]
        return truth + 0.01 * torch.randn(n, *shape, generator=generator, dtype=F64)

    post = sample_gibbs(problem, y, num_samples=4, sweeps=12, burn_in=2, x_sampler=x_step,
                        generator=torch.Generator().manual_seed(1), progress=False)
    return post, y


def test_to_arviz_exports_images_latents_and_observed_data_for_arviz_functions():
    post, y = _blind_gibbs_posterior()
    data = post.to_arviz(observed=y)
    assert sorted(data.posterior.data_vars) == ["sigma", "width", "x"]
    assert data.posterior["x"].shape == (4, 10, 1, 6, 6)
    for name in ("sigma", "width"):
        np.testing.assert_array_equal(data.posterior[name].values, np.asarray(post.extras["latents"][name]))
    np.testing.assert_array_equal(data["observed_data"]["y"].values, y.numpy())
    np.testing.assert_array_equal(data.posterior["x"].values, post.samples.numpy())
    summary = az.summary(data, var_names=["sigma", "width"], round_to="none")
    for name in ("sigma", "width"):
        draws = np.asarray(post.extras["latents"][name])
        assert summary.loc[name, "mean"] == pytest.approx(draws.mean(), rel=1e-12)
        assert summary.loc[name, "sd"] == pytest.approx(draws.std(ddof=1), rel=1e-12)
    # arviz's ESS of the exported image equals Posterior.ess() (same draws, same estimator)
    np.testing.assert_allclose(np.asarray(az.ess(data, var_names=["x"])["x"].values), post.ess().numpy(), rtol=1e-12)
    assert data.posterior.attrs["sampler"] == "gibbs"
    assert ARVIZ_MAJOR in (0, 1)


def test_to_arviz_complex_samples_and_bad_latents():
    post = Posterior(torch.randn(2, 4, 3, dtype=torch.complex128))
    data = post.to_arviz()
    assert data.posterior["x"].shape == (2, 4, 3, 2)
    np.testing.assert_array_equal(data.posterior["x"].values[..., 1], post.samples.imag.numpy())
    with pytest.raises(ShapeError, match=r"extras\['latents'\]\['sigma'\] has shape \(3,\)"):
        Posterior(torch.zeros(2, 4, 3), extras={"latents": {"sigma": [0.1, 0.2, 0.3]}}).to_arviz()
    with pytest.raises(ValueError, match="clashes with var_name"):
        Posterior(torch.zeros(2, 4, 3), extras={"latents": {"x": np.zeros((2, 4))}}).to_arviz()
