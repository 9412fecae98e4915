"""``bayesinv.builders``: problems, priors and samplers from names, as the sample command and studies use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesinv.builders import make_problem, resolve_prior, run_sampler, sampler_function
from bayesinv.data import phantom_dataset
from bayesinv.noise import Gaussian
from bayesinv.operators import make_operator
from bayesinv.priors import exact_posterior


def test_make_problem_is_the_registry_operator_with_gaussian_noise():
    problem = make_problem("inpaint", image_size=8, noise_sigma=0.2, seed=3, operator_options={"fraction_missing": 0.5})
    reference = make_operator("inpaint", (1, 8, 8), seed=3, fraction_missing=0.5)
    torch.testing.assert_close(problem.operator.to_matrix(torch.float64), reference.to_matrix(torch.float64))
    assert isinstance(problem.noise, Gaussian) and float(problem.noise.sigma) == 0.2
    assert problem.name == "inpaint-8" and problem.prior is None
    with pytest.raises(TypeError, match="unknown option"):
        make_problem("inpaint", image_size=8, noise_sigma=0.2, operator_options={"nope": 1})


def test_phantom_gaussian_is_the_sample_moments_of_4000_training_phantoms():
    prior = resolve_prior("phantom-gaussian", 8)
    data = phantom_dataset("train", 4000, 8).images.double().reshape(4000, -1).numpy()
    np.testing.assert_allclose(prior.mean_vector.numpy(), data.mean(0), rtol=1e-12, atol=1e-12)
    expected = np.cov(data.T) + 1e-4 * np.eye(64)
    np.testing.assert_allclose(prior.covariance_matrix.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_run_sampler_exact_matches_the_closed_form_draws():
    problem = make_problem("denoise", image_size=8, noise_sigma=0.3, prior=resolve_prior("phantom-gaussian", 8))
    y = problem.simulate(phantom_dataset("test", 1, 8).images.double(), generator=torch.Generator().manual_seed(0))
    post = run_sampler("exact", problem, y, num_samples=3, steps=None, generator=torch.Generator().manual_seed(1),
                       options={})
    reference = exact_posterior(problem, y).sample(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(post.samples[:, 0], reference, rtol=0, atol=0)


def test_unknown_names_and_options_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"unknown sampler 'dpss'; choose one of \[.*'dps'"):
        sampler_function("dpss", {})
    with pytest.raises(ValueError, match=r"^exact has no option 'nope'; its options: shrink$"):
        sampler_function("exact", {"nope": 1.0})
    assert sampler_function("exact", {"shrink": 0.5}).__name__ == "sample_exact"
