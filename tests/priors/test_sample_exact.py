"""``sample_exact``: exact posterior draws with a sampler's signature, and the shrunk over-confident control."""

from __future__ import annotations

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Identity
from bayesinv.priors import GaussianPrior, exact_posterior, sample_exact


def _problem() -> InverseProblem:
    return InverseProblem(Identity((3,)), Gaussian(0.5), GaussianPrior(torch.zeros(3), 1.0))


def test_draws_are_the_exact_posteriors_and_shrink_scales_them_about_the_mean():
    problem, y = _problem(), torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    exact = exact_posterior(problem, y)
    reference = exact.sample(5, generator=torch.Generator().manual_seed(3))
    post = sample_exact(problem, y, num_samples=5, generator=torch.Generator().manual_seed(3))
    assert post.samples.shape == (5, 1, 3) and post.sampler == "exact" and post.nfe == 0
    torch.testing.assert_close(post.samples[:, 0], reference, rtol=0, atol=0)
    shrunk = sample_exact(problem, y, num_samples=5, generator=torch.Generator().manual_seed(3), shrink=0.25)
    # closed form: posterior mean y / (1 + sigma^2) = 0.8 y for a unit prior and sigma = 0.5
    mean = 0.8 * y[0]
    torch.testing.assert_close(exact.mean, mean)
    torch.testing.assert_close(shrunk.samples[:, 0] - mean, 0.25 * (reference - mean))
    assert shrunk.settings["shrink"] == 0.25


@pytest.mark.parametrize("kwargs, message", [({"shrink": 0.0}, "shrink must be positive"),
                                             ({"num_samples": 0}, "num_samples must be >= 1")])
def test_bad_arguments(kwargs, message):
    options = {"num_samples": 2, "generator": torch.Generator().manual_seed(0), **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_exact(_problem(), torch.zeros(1, 3), **options)
