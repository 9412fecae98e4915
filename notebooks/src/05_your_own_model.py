# %% [markdown]
# # Your own model: an unknown noise level and a blind blur width, sampled jointly with the image
#
# Real measurements rarely come with a known noise level or a known blur. In bayesinv these are **latent
# variables of the Pyro model**: the noise model takes a distribution instead of a number, and the operator
# becomes a factory of the nuisance latents. Every sampler reads the likelihood from this model, so nothing
# else changes.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.data import phantom_dataset
from bayesinv.operators import Blur
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import sample_gibbs

SMALL = os.environ.get("BAYESINV_NOTEBOOK_SMALL") == "1"
SHAPE = (1, 32, 32)

prior = load_prior("phantom32")
problem = InverseProblem(
    lambda width: Blur.gaussian(SHAPE, width, size=13),   # the operator as a function of its latent
    Gaussian(dist.Uniform(0.01, 0.2)),                    # sigma ~ Uniform(0.01, 0.2), a latent too
    prior,
    nuisance={"width": dist.Uniform(0.5, 3.0)},            # blur width ~ Uniform(0.5, 3) px
)
print(problem.latent_names)

# %% [markdown]
# The model is an ordinary Pyro model: `x ~ prior`, `sigma ~ p(sigma)`, `width ~ p(width)`, `y ~ N(A_width x, sigma²)`.
# Its trace shows the sites (the diffusion prior has no density, so we trace with `x` given).

# %%
truth = phantom_dataset("test", 1, 32, lesion_prob=1.0).images.double()
true_sigma, true_width = 0.05, 1.5
y = problem.simulate(truth, generator=torch.Generator().manual_seed(0),
                     sigma=torch.tensor([true_sigma]), width=torch.tensor([true_width]))
conditioned = pyro.poutine.condition(problem.model, data={"x": truth, "sigma": torch.tensor([true_sigma]),
                                                          "width": torch.tensor([true_width])})
trace = pyro.poutine.trace(conditioned).get_trace(y)
print({name: site["fn"].__class__.__name__ for name, site in trace.nodes.items() if site["type"] == "sample"})

# %% [markdown]
# ## Joint sampling
# `sample_gibbs` alternates `x ~ p(x | sigma, width, y)` with a diffusion sampler (DPS here, latents held per
# chain) and exact grid draws of each latent from `p(latent | x, other latents, y)`.

# %%
post = sample_gibbs(problem, y, num_samples=2 if SMALL else 4, sweeps=2 if SMALL else 4, burn_in=1 if SMALL else 2,
                    x_sampler="dps", x_options={"steps": 20 if SMALL else 50},  # DPS diverges at 10 steps here
                    generator=torch.Generator().manual_seed(1), progress=False)
for name, truth_value in (("sigma", true_sigma), ("width", true_width)):
    draws = np.asarray(post.extras["latents"][name])
    print(f"{name:5s}: posterior mean {draws.mean():.3f}, 90% interval [{np.quantile(draws, 0.05):.3f}, "
          f"{np.quantile(draws, 0.95):.3f}], truth {truth_value}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
panels = [("truth", truth[0, 0]), ("measurement", y[0, 0]), ("posterior mean", post.mean()[0]), ("posterior std", post.std()[0])]
for ax, (title, image) in zip(axes, panels):
    ax.imshow(image.numpy(), cmap="gray" if "std" not in title else "magma")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# The `x`-step inherits DPS's approximation; with an exact conditional sampler the same sweeps are an exact
# Gibbs sampler (see `tests/samplers/test_gibbs.py`, which checks the noise level's marginal against the
# closed form).
