"""Split Gibbs SMC: resampling, the ladder, and the sampler against an exact 8x8 lesion-mixture posterior."""

import math

import pytest
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Blur
from bayesinv.priors import LesionMixturePrior, LesionPosteriorSolver
from bayesinv.samplers import SAMPLERS, sample_split_gibbs_smc
from bayesinv.samplers.smc import systematic_resample
from bayesinv.samplers.split_gibbs_smc import sigma_ladder


def test_registered():
    assert SAMPLERS["split_gibbs_smc"] is sample_split_gibbs_smc


def test_ladder_is_geometric_and_ends_at_sigma_y():
    ladder = sigma_ladder(0.05, 4.0, 8)
    assert math.isclose(ladder[0], 0.2) and math.isclose(ladder[-1], 0.05) and len(ladder) == 9
    ratios = [a / b for a, b in zip(ladder[:-1], ladder[1:], strict=True)]
    assert max(ratios) - min(ratios) < 1e-12 and math.isclose(ratios[0], 4.0 ** (1 / 8))


def test_systematic_resampling_counts_match_weights():
    # systematic resampling gives each particle floor(N w_i) or ceil(N w_i) copies
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([[0.5, 0.25, 0.125, 0.125, 0.0, 0.0, 0.0, 0.0], [0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]],
                     dtype=torch.float64)
    for _ in range(20):
        idx = systematic_resample(w.log(), g)
        counts = torch.stack([torch.bincount(row, minlength=8) for row in idx]).double()
        assert bool(((counts >= (8 * w).floor() - 1e-9) & (counts <= (8 * w).ceil() + 1e-9)).all()), counts


@pytest.fixture(scope="module")
def lesion_case():
    # an ambiguous case: P(lesion | y) = 0.48 (checked below), where the weights of the components matter
    prior = LesionMixturePrior.from_phantoms(8, num_phantoms=200, num_locations=4, radius=1.5, contrast=0.25)
    problem = InverseProblem(Blur.gaussian((1, 8, 8), 1.0), Gaussian(0.05), prior)
    x, _ = prior.sample_components(1, generator=torch.Generator().manual_seed(1))
    y = problem.simulate(x, generator=torch.Generator().manual_seed(101))
    return prior, problem, y, LesionPosteriorSolver(problem).posterior(y)


def test_lesion_probability_and_moments_match_exact_posterior(lesion_case):
    prior, problem, y, exact = lesion_case
    assert 0.4 < exact.lesion_probability < 0.6
    n = 256
    post = sample_split_gibbs_smc(problem, y, num_samples=n, steps=40, start=2.5, start_sweeps=20,
                                  final_sweeps=15, generator=torch.Generator().manual_seed(0))
    draws = post.samples[:, 0]
    assert post.samples.shape == (n, 1, 1, 8, 8) and post.nfe > 0
    # P(lesion | y): the draws' mean of p(lesion | x) within 4 binomial standard errors of n/2 draws (the
    # SMC's effective sample size after resampling is about half its particles)
    p_hat = float(prior.lesion_probability(draws).mean())
    p = exact.lesion_probability
    assert abs(p_hat - p) <= 4 * math.sqrt(p * (1 - p) / (n / 2)), (p_hat, p)
    # the mean within 5 standard errors (of n/2 draws) per pixel; the spread within 6% (inexact DDPM prior step)
    mean, std = exact.mean.reshape(-1), exact.std.reshape(-1)
    err = (draws.reshape(n, -1).mean(0) - mean).abs() / (std / math.sqrt(n / 2))
    assert float(err.max()) <= 5, err
    ratio = float(draws.reshape(n, -1).std(0).mean() / std.mean())
    assert 0.94 <= ratio <= 1.06, ratio
    # the per-level weight variance is recorded and O(1)
    assert len(post.extras["log_weight_var"]) == 40 and max(post.extras["log_weight_var"]) < 1


def test_bad_inputs(lesion_case):
    _, problem, y, _ = lesion_case
    with pytest.raises(ValueError, match="steps must be a positive int"):
        sample_split_gibbs_smc(problem, y, num_samples=2, steps=0, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        sample_split_gibbs_smc(problem, y, num_samples=2, generator=0)
