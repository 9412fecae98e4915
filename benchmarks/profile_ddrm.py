"""Where DDRM's wall time goes: cProfile of one ``sample_ddrm`` run on the phantom32 network.

32x32 Gaussian deblur (std 1.5, sigma_y = 0.05), ``--chains`` chains, ``--steps`` steps, float32, after one
warm-up run. Prints the share of the wall time spent inside the network (``torch.nn.Module`` calls) and in the
rest of the DDRM step, then the functions with the most internal time.

    python benchmarks/profile_ddrm.py [--chains 16] [--steps 20]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Blur
from bayesinv.priors import load_prior
from bayesinv.samplers import sample_ddrm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    prior = load_prior("phantom32")
    problem = InverseProblem(Blur.gaussian((1, 32, 32), 1.5), Gaussian(0.05), prior)
    x_true = prior.sample_n(1, steps=20, generator=torch.Generator().manual_seed(0))
    y = problem.simulate(x_true.to(torch.float32), generator=torch.Generator().manual_seed(1))

    def run():
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
    step = sum(cum for (file, _, name), (_, _, _, cum, _) in stats.stats.items() if name == "ddrm_step")
    print(f"wall {total:.2f} s: network {network:.2f} s ({100 * network / total:.1f}%), DDRM step outside the "
          f"network {step - network:.2f} s ({100 * (step - network) / total:.1f}%), rest (setup, driver) "
          f"{total - step:.2f} s ({100 * (total - step) / total:.1f}%)")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
