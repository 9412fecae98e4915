"""The few arviz calls bayesinv makes, written once for arviz 0.x and arviz 1.x.

arviz 1.0 (Python >= 3.12 only) split into ``arviz-base``/``arviz-stats``/``arviz-plots``: ``from_dict``
takes one mapping of groups and returns an ``xarray.DataTree`` instead of ``InferenceData``, and
``hdi`` renamed ``hdi_prob`` to ``prob`` and its bound dimension ``hdi`` to ``ci_bound``. pip picks
arviz 0.23 on Python 3.11 and arviz 1.x on 3.12+, so both have to work; the numbers are the same
(checked to the last digit on one gamma sample: HDI bounds, bulk ESS and rank R-hat).

All arrays here have shape ``(chains, draws, *event_shape)``.

>>> import numpy as np
>>> draws = np.random.default_rng(0).normal(size=(2, 50, 3))
>>> hdi(draws, 0.9).shape, ess(draws).shape
((3, 2), (3,))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import warnings

import numpy as np

with warnings.catch_warnings():  # arviz 0.x announces its 1.0 refactor at import: not about our code
    warnings.filterwarnings("ignore", message="(?s).*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["ARVIZ_MAJOR", "from_dict", "hdi", "ess", "rhat"]

#: the installed arviz's major version (0 or 1)
ARVIZ_MAJOR: int = int(az.__version__.split(".")[0])


def from_dict(posterior: Mapping[str, np.ndarray], observed_data: Mapping[str, np.ndarray] | None = None,
              attrs: Mapping[str, Any] | None = None, dims: Mapping[str, list[str]] | None = None) -> Any:
    """arviz data with a ``posterior`` group (and ``observed_data`` if given).

    Returns ``arviz.InferenceData`` under arviz 0.x and ``xarray.DataTree`` under arviz 1.x; both
    index groups the same way (``data.posterior``, ``data["observed_data"]``) and both are accepted
    by ``arviz.summary``, ``arviz.ess`` and ``arviz.rhat``. ``attrs`` are set on the ``posterior`` group.
    """
    attrs = dict(attrs or {})
    if ARVIZ_MAJOR >= 1:
        groups: dict[str, Any] = {"posterior": dict(posterior)}
        if observed_data:
            groups["observed_data"] = dict(observed_data)
        return az.from_dict(groups, attrs={"posterior": attrs}, dims=dims)
    data = az.from_dict(posterior=dict(posterior), observed_data=dict(observed_data) if observed_data else None,
                        attrs=attrs, dims=dims)
    data.posterior.attrs.update(attrs)
    return data


def _posterior_dataset(draws: np.ndarray) -> Any:
    return from_dict({"x": np.asarray(draws)}).posterior


def hdi(draws: np.ndarray, prob: float) -> np.ndarray:
    """Highest-density interval of each coordinate: ``(*event_shape, 2)`` (lower, upper)."""
    if ARVIZ_MAJOR >= 1:
        return np.asarray(az.hdi(_posterior_dataset(draws), prob=prob)["x"].values)
    return np.asarray(az.hdi(np.asarray(draws), hdi_prob=prob))


def ess(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size of each coordinate, ``event_shape``."""
    return np.asarray(az.ess(_posterior_dataset(draws))["x"].values)


def rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat of each coordinate, ``event_shape``."""
    return np.asarray(az.rhat(_posterior_dataset(draws))["x"].values)
