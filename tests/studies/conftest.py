"""A tiny study on an exactly solvable problem: denoising 8x8 images drawn from the Gaussian phantom prior."""

import pytest

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Identity
from bayesinv.studies import parse_study, resolve_prior


def tiny_spec(folder, *, samplers=None, num_calibration=6, num_test=6, num_ood=0, family="prior", **diag):
    samplers = samplers or {"exact": {"sampler": "exact", "num_samples": 10},
                            "over": {"sampler": "exact", "num_samples": 10, "options": {"shrink": 0.5}}}
    doc = {"name": "tiny", "seed": 3, "problem": {"operator": "denoise", "image_size": 8, "noise_sigma": 0.1},
           "prior": {"name": "phantom-gaussian"},
           "data": {"family": family, "num_calibration": num_calibration, "num_test": num_test, "num_ood": num_ood},
           "samplers": samplers, "diagnostics": diag}
    return parse_study(doc, folder / "study.toml")


@pytest.fixture(scope="session")
def tiny_problem():
    return InverseProblem(Identity((1, 8, 8)), Gaussian(0.1), resolve_prior("phantom-gaussian", 8))
