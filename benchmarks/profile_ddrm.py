"""Where a sampler's wall time goes: cProfile of one DDRM (or annealed Langevin) run on the phantom32 network.

32x32 Gaussian deblur (std 1.5, sigma_y = 0.05), ``--chains`` chains, ``--steps`` DDRM steps (annealed Langevin:
``--steps`` noise levels from 20 to 0.01 x 10 steps each), float32, after one warm-up run. Prints the share of the
wall time spent inside the network (``torch.nn.Module`` calls), in the rest of the sampler's step, and in
setup and driver, then the functions with the most internal time.

    python benchmarks/profile_ddrm.py [--chains 16] [--steps 20] [--sampler annealed_langevin --steps 10]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Blur
from bayesinv.priors import load_prior
from bayesinv.samplers import sample_annealed_langevin, sample_ddrm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--sampler", default="ddrm", choices=["ddrm", "annealed_langevin"])
    args = parser.parse_args()
    prior = load_prior("phantom32")
    problem = InverseProblem(Blur.gaussian((1, 32, 32), 1.5), Gaussian(0.05), prior)
    x_true = prior.sample_n(1, steps=20, generator=torch.Generator().manual_seed(0))
    y = problem.simulate(x_true.to(torch.float32), generator=torch.Generator().manual_seed(1))

    def run():
        if args.sampler == "annealed_langevin":
            return sample_annealed_langevin(problem, y, num_samples=args.chains, steps=args.steps, steps_per_level=10,
                                            noise_levels=(20.0, 0.01), progress=False,
                                            generator=torch.Generator().manual_seed(3))
        return sample_ddrm(problem, y, num_samples=args.chains, steps=args.steps, progress=False,
                           generator=torch.Generator().manual_seed(3))

    run()  # warm-up
    profile = cProfile.Profile()
    profile.enable()
    run()
    profile.disable()
    stats = pstats.Stats(profile)
    total = stats.total_tt
    network = sum(cum for (file, _, name), (_, calls, _, cum, callers) in stats.stats.items()
                  if name == "_call_impl" and file.endswith("module.py")
                  and not any(c[2] == "_call_impl" for c in callers))  # outermost module calls only
    step_name = "ddrm_step" if args.sampler == "ddrm" else "step"
    step = sum(cum for (file, _, name), (_, _, _, cum, _) in stats.stats.items()
               if name == step_name and file.endswith(f"{args.sampler}.py"))
    print(f"wall {total:.2f} s: network {network:.2f} s ({100 * network / total:.1f}%), the step outside the "
          f"network {step - network:.2f} s ({100 * (step - network) / total:.1f}%), rest (setup, driver) "
          f"{total - step:.2f} s ({100 * (total - step) / total:.1f}%)")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
