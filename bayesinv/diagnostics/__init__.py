"""Diagnostics: numbers that judge posterior samples (no plotting; ``bayesinv.report`` renders them).

Calibration: :mod:`~bayesinv.diagnostics.coverage` (per-pixel/stratified coverage with
Clopper–Pearson intervals), :mod:`~bayesinv.diagnostics.sbc` (simulation-based calibration),
:mod:`~bayesinv.diagnostics.tarp` (joint coverage of whole images), :mod:`~bayesinv.diagnostics.conformal`
(risk-controlling recalibration of interval width).

Distances: :mod:`~bayesinv.diagnostics.distances` (sliced Wasserstein and MMD to exact posterior samples,
with the noise floor of two exact sample sets).
"""

from bayesinv.diagnostics.conformal import (RCPSResult, hb_ucb, miscoverage_risk, point_bounds, rcps_apply,
                                            rcps_calibrate, sample_bounds)
from bayesinv.diagnostics.coverage import (DEFAULT_LEVELS, CoverageResult, StratumCoverage, as_samples,
                                           clopper_pearson_interval, coverage, credible_intervals,
                                           equal_tailed_intervals, hpd_intervals)
from bayesinv.diagnostics.distances import (DistanceResult, distance_to_reference, median_bandwidth, mmd,
                                            noise_floor, random_directions, sliced_wasserstein, wasserstein_1d)
from bayesinv.diagnostics.sbc import RankTest, SBCResult, sbc, sbc_ranks
from bayesinv.diagnostics.tarp import TarpResult, tarp

__all__ = [
    # calibration
    "DEFAULT_LEVELS", "CoverageResult", "StratumCoverage", "as_samples", "clopper_pearson_interval", "coverage",
    "credible_intervals", "equal_tailed_intervals", "hpd_intervals",
    "RankTest", "SBCResult", "sbc", "sbc_ranks",
    "TarpResult", "tarp",
    # distances to exact posteriors
    "DistanceResult", "distance_to_reference", "median_bandwidth", "mmd", "noise_floor", "random_directions",
    "sliced_wasserstein", "wasserstein_1d",
    "RCPSResult", "hb_ucb", "miscoverage_risk", "point_bounds", "rcps_apply", "rcps_calibrate", "sample_bounds",
]
