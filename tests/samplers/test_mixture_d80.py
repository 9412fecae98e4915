"""The mixture testbed at d = 80 (the issue's second dimension), where every sampler's score is exact.

Smaller runs than ``benchmarks/samplers_mixture.py`` (which has the full d = 8 / 80 x d_y x sigma_y table) so
that each test stays under ~40 s on 2 CPU cores: SMC reaches the noise floor and improves with particles;
the approximate samplers beat the prior by a wide margin where the data are informative.
"""

from __future__ import annotations

import pytest
import torch

from bayesinv.samplers import sample_annealed_langevin, sample_ddrm, sample_dps, sample_score_sde, sample_smc
from tests.samplers.helpers import mixture_bed, sw_to_floor

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("num_measurements", "steps"), [(1, 30), (4, 60)])
def test_smc_reaches_the_noise_floor_at_d80_and_improves_with_particles(num_measurements, steps):
    """120 independent systems: N = 16 particles within 1.5x the floor (sigma_y = 0.66 for d_y = 1, 0.11 for
    d_y = 4, where 30 steps leave it at 1.9x: the sharper posterior needs finer steps)."""
    bed = mixture_bed(num_measurements, dim=80)
    distances = []
    for n in (1, 4, 16):
        post = sample_smc(bed.problem, bed.y, num_samples=120, num_particles=n, steps=steps,
                          generator=torch.Generator().manual_seed(0), progress=False)
        distances.append(sw_to_floor(post, bed.posterior))
    (d1, floor), (d4, _), (d16, _) = distances
    assert d16 < 1.5 * floor, distances
    assert d1 > d16 and d4 > d16 - 0.25 * floor, distances
    prior_draws = bed.problem.prior.sample_n(120, generator=torch.Generator().manual_seed(4))
    assert d16 < 0.5 * sw_to_floor(prior_draws, bed.posterior)[0], distances


SAMPLERS = {
    "dps": lambda p, y, g: sample_dps(p, y, num_samples=300, steps=100, generator=g, progress=False),
    "ddrm": lambda p, y, g: sample_ddrm(p, y, num_samples=300, generator=g, progress=False),
    "score_sde": lambda p, y, g: sample_score_sde(p, y, num_samples=300, steps=100, generator=g, progress=False),
    "annealed_langevin": lambda p, y, g: sample_annealed_langevin(p, y, num_samples=300, steps_per_level=20,
                                                                  likelihood_inflation="operator", generator=g,
                                                                  progress=False),
}


# At d = 80 with 2 measurements the posterior keeps one of the prior's 25 modes, which are separated in all 80
# coordinates. DPS moves every coordinate along the likelihood gradient through the denoiser and finds it;
# DDRM, score-SDE (data consistency acts on the 2 measured directions only) and annealed Langevin (the
# likelihood enters at a high noise level and fades) mostly keep the prior's modes: SW 3.80 / 3.82 / 4.56
# against 4.69 for prior draws (floor 0.28). These are known failures, kept as strict xfails so that a fix shows.
KNOWN_FAILURES = {"ddrm", "score_sde", "annealed_langevin"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="keeps the prior's "
                                                                          "modes at d = 80 (see comment)"))
                                  if n in KNOWN_FAILURES else n for n in SAMPLERS])
def test_samplers_beat_the_prior_at_d80(name):
    """d_y = 2 (sigma_y = 0.20, one dominant mode): the sampler is at least twice closer than the prior."""
    bed = mixture_bed(2, dim=80)
    post = SAMPLERS[name](bed.problem, bed.y, torch.Generator().manual_seed(0))
    prior_draws = bed.problem.prior.sample_n(300, generator=torch.Generator().manual_seed(4))
    d_sampler, floor = sw_to_floor(post, bed.posterior)
    d_prior, _ = sw_to_floor(prior_draws, bed.posterior)
    assert d_sampler < 0.5 * d_prior, (d_sampler, d_prior, floor)
