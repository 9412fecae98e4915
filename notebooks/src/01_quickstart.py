# %% [markdown]
# # Quickstart: a posterior with credible intervals in a few lines
#
# An inverse problem in bayesinv is a probabilistic model: a forward **operator** (here a Gaussian blur),
# a **noise** model and a **prior** (here `phantom32`, the diffusion prior shipped in `models/`).
# A **sampler** turns the model and a measurement `y` into a `Posterior`: samples, their mean, their
# spread, and per-pixel credible intervals.

# %%
import os

import matplotlib.pyplot as plt
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.data import phantom_dataset
from bayesinv.operators import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import sample_ddrm, sample_dps

SMALL = os.environ.get("BAYESINV_NOTEBOOK_SMALL") == "1"  # the test suite runs this notebook at a small size
NUM_SAMPLES = 4 if SMALL else 16

# %% [markdown]
# ## The model: y = blur(x) + noise, x ~ phantom32

# %%
prior = load_prior("phantom32")
operator = make_operator("deblur", (1, 32, 32), std=1.5)
problem = InverseProblem(operator, Gaussian(0.05), prior)

truth = phantom_dataset("test", 1, 32).images.double()          # a held-out phantom
y = problem.simulate(truth, generator=torch.Generator().manual_seed(0))
print(problem.operator, "| measurement", tuple(y.shape))

# %% [markdown]
# ## Sample the posterior
# DDRM (Kawar et al. 2022) works in the operator's SVD basis: 20 network calls per sample.
# DPS (Chung et al. 2023) follows the likelihood gradient through the denoiser.

# %%
post = sample_ddrm(problem, y, num_samples=NUM_SAMPLES, generator=torch.Generator().manual_seed(1), progress=False)
post_dps = sample_dps(problem, y, num_samples=NUM_SAMPLES, steps=20 if SMALL else 100,
                      generator=torch.Generator().manual_seed(2), progress=False)
print(post)

# %% [markdown]
# ## Mean, spread and 90% credible intervals
# `interval(0.9)` gives the equal-tailed interval per pixel (`kind="hdi"` for the highest-density one).
# How many pixels of the truth does it contain?

# %%
for p in (post, post_dps):
    lower, upper = p.interval(0.9)
    inside = ((truth[0] >= lower) & (truth[0] <= upper)).double().mean()
    rmse = (p.mean() - truth[0]).pow(2).mean().sqrt()
    print(f"{p.sampler:5s} RMSE of the mean {float(rmse):.4f} | 90% intervals contain {float(inside):.1%} of the pixels "
          f"| {p.nfe} network calls per sample, {p.wall_time:.1f} s")

# %%
lower, upper = post.interval(0.9)
panels = {"truth": truth[0, 0], "measurement": y[0, 0], "posterior mean": post.mean()[0],
          "posterior std": post.std()[0], "90% interval width": (upper - lower)[0], "one sample": post.samples[0, 0, 0]}
fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.4))
for ax, (title, image) in zip(axes, panels.items()):
    ax.imshow(image.detach().numpy(), cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# One pixel's coverage in one image says little: calibration needs many cases. Notebook 03 runs a study
# and writes the calibration report.
