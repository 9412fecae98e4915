"""One-shot posterior sampling on a simulated measurement (the ``bayesinv sample`` command).

The problem, prior and sampler come from names through :mod:`bayesinv.builders`, as in a study, without
the studies layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from bayesinv.posterior import Posterior

__all__ = ["sample_cli"]


def sample_cli(*, problem: str, prior: str = "phantom32", sampler: str = "dps", num_samples: int = 16,
               steps: int | None = None, noise_sigma: float = 0.05, image_index: int = 0, seed: int = 0,
               out: str | os.PathLike = "sample-output", progress: bool = True, options: dict | None = None,
               device: str | torch.device = "cpu") -> Path:
    """Simulate ``y`` from held-out test phantom ``image_index``, sample, save the posterior and a PNG.

    ``device``: where the operator, the prior (network or analytic) and ``y`` live while sampling (e.g.
    ``"cuda"``); the random draws come from a CPU generator, so a seed gives the same numbers on every device
    up to rounding. The posterior comes back to the CPU before it is saved.

    Writes ``<out>/posterior.safetensors`` (+ ``.json``, with the truth and y) and ``<out>/posterior.png``
    (truth, A^+ y, posterior mean, std, 90% interval width and four samples). Returns the posterior path.
    """
    from bayesinv._validation import check_device
    from bayesinv.builders import make_problem, resolve_prior, run_sampler
    from bayesinv.data import phantom_dataset
    from bayesinv.report.figures import posterior_figure

    device = check_device(device, "--device")
    prior_obj = resolve_prior(prior).to(device)
    size = int(prior_obj.event_shape[-1])
    inverse_problem = make_problem(problem, image_size=size, noise_sigma=noise_sigma, prior=prior_obj, seed=seed)
    inverse_problem.operator.to(device)
    truth = phantom_dataset("test", image_index + 1, size, seed=seed).images[image_index : image_index + 1].double()
    truth = truth.to(device)
    y = inverse_problem.simulate(truth, generator=torch.Generator().manual_seed(seed))
    post: Posterior = run_sampler(sampler, inverse_problem, y, num_samples=num_samples, steps=steps,
                                  generator=torch.Generator().manual_seed(seed + 1), options=dict(options or {}),
                                  progress=progress)
    post.samples = post.samples.cpu()
    truth, y = truth.cpu(), y.cpu()
    inverse_problem.operator.to("cpu")
    out = Path(out)
    post.extras["truth"] = truth[0].cpu().tolist()
    path = post.save(out / "posterior.safetensors")
    view = inverse_problem.operator.pinv(y) if inverse_problem.operator.linear else torch.zeros_like(truth)
    (out / "posterior.png").write_bytes(posterior_figure(truth[0, 0].cpu(), view[0, 0].real.cpu(), post))
    return path
