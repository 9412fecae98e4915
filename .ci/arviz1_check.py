"""bayesinv/_arviz.py under arviz 1.x (Python >= 3.12), without torch: HDI against a numpy reference,
ESS/R-hat shapes and values, from_dict groups and attrs, az.summary. Run by .ci/run when python3.12 exists.

The full suite cannot run on Python 3.12 here: pip finds only CUDA builds of torch for it (several GB).
"""

import importlib.util
import sys
from pathlib import Path

import arviz as az
import numpy as np

spec = importlib.util.spec_from_file_location("_arviz", Path(__file__).parents[1] / "bayesinv" / "_arviz.py")
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
assert compat.ARVIZ_MAJOR >= 1, az.__version__
draws = np.random.default_rng(0).gamma(2.0, size=(3, 200, 4))
flat = np.sort(draws.reshape(600, 4), axis=0)
inside = int(np.floor(0.8 * 600))
start = np.argmin(flat[inside:] - flat[: 600 - inside], axis=0)
reference = np.stack([flat[start, range(4)], flat[start + inside, range(4)]], axis=1)
np.testing.assert_allclose(compat.hdi(draws, 0.8), reference, rtol=0, atol=1e-12)
iid = np.random.default_rng(1).normal(size=(4, 500, 3))
ess, rhat = compat.ess(iid), compat.rhat(iid)
assert ess.shape == (3,) and ((ess > 1500) & (ess < 2700)).all() and (rhat < 1.01).all(), (ess, rhat)
data = compat.from_dict({"x": draws, "sigma": draws[..., 0]}, {"y": np.ones(3)}, attrs={"sampler": "s"})
assert sorted(data.posterior.data_vars) == ["sigma", "x"] and data["observed_data"]["y"].shape == (3,)
assert data.posterior.attrs["sampler"] == "s"
summary = az.summary(data, var_names=["sigma"], round_to="none")
np.testing.assert_allclose(summary.loc["sigma", "mean"], draws[..., 0].mean(), rtol=1e-12)
print(f"arviz {az.__version__} on Python {sys.version.split()[0]}: bayesinv/_arviz.py OK")
