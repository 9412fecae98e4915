"""Posterior samplers with the phantom32 diffusion prior: quality, cost, overhead and batching throughput.

Problems (sigma_y = 0.05): Gaussian deblurring (std 1.5 px), 50% random inpainting, 4x Cartesian MRI.
For each sampler and problem, over ``--images`` held-out test phantoms (``num_chains`` chains each):

* PSNR and SSIM of the posterior mean (scikit-image, data range 1),
* NFE (network calls per chain) and wall time per image,
* overhead = wall time / (number of batched network calls x the measured cost of one call of the same
  kind at the same batch: a forward pass, or forward + VJP for DPS); 1.0 means the sampler costs nothing
  beyond its network calls (target <= 1.10),
* throughput of ``--throughput-chains`` (16) chains drawn as one batch against the same chains drawn one at a time
  (target >= 3x; on a CPU the network's cost grows with the batch, so the gain is smaller than on a GPU).

    python benchmarks/samplers_phantom.py --quick           # 1 image, 4 chains, short runs (CPU: minutes)
    python benchmarks/samplers_phantom.py --images 8 --num-chains 16   # the paper settings (use a GPU)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bayesinv import Gaussian, InverseProblem
from bayesinv.data import phantom_dataset
from bayesinv.errors import SamplerDivergence
from bayesinv.operators import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import sample_annealed_langevin, sample_ddrm, sample_dps, sample_score_sde

PROBLEMS = {"deblur": ("deblur", {"std": 1.5}), "inpaint": ("inpaint", {"fraction_missing": 0.5}),
            "mri": ("mri", {"acceleration": 4})}

# name -> (sampler, kind of network call, calls per step, default steps, quick steps)
SAMPLERS = {
    "dps": (sample_dps, "vjp", 1, 1000, 100),
    "ddrm": (sample_ddrm, "forward", 1, 20, 20),
    "score_sde": (sample_score_sde, "forward", 2, 500, 50),  # predictor + one corrector per step
    "annealed_langevin": (sample_annealed_langevin, "forward", 1, 10, 10),  # levels; x steps_per_level
}


def build_problem(name: str, prior, sigma_y: float = 0.05, seed: int = 0) -> InverseProblem:
    """One of :data:`PROBLEMS` at the prior's image size with Gaussian noise ``sigma_y``."""
    operator, options = PROBLEMS[name]
    shape = tuple(prior.event_shape)
    return InverseProblem(make_operator(operator, shape, seed=seed, **options), Gaussian(sigma_y), prior,
                          name=f"{name}-{shape[-1]}")


def network_cost(prior, batch: int, kind: str, *, repeats: int = 5) -> float:
    """Median seconds of one ``prior.denoise`` call on ``batch`` images (``kind="vjp"``: with its VJP)."""
    x = torch.randn(batch, *prior.event_shape)
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        if kind == "vjp":
            xg = x.clone().requires_grad_(True)
            out = prior.denoise(xg, 500)
            torch.autograd.grad(out.sum(), xg)
        else:
            with torch.no_grad():
                prior.denoise(x, 500)
        if r:  # the first call warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_sampler(name: str, problem, y, *, num_chains: int, steps: int, seed: int, batch_size=None):
    fn = SAMPLERS[name][0]
    options = {"steps": steps}
    if name == "annealed_langevin":  # the schedule's top level (~157) is far too high for phantoms: start at 20
        options.update(steps_per_level=10, noise_levels=(20.0, 0.01))
    return fn(problem, y, num_samples=num_chains, generator=torch.Generator().manual_seed(seed), progress=False,
              batch_size=batch_size, **options)


def network_calls(name: str, post) -> int:
    """Batched network calls the sampler made (every chain in one batch)."""
    if name == "score_sde":
        return post.settings["steps"] * (1 + post.settings.get("corrector_steps", 1))
    return post.nfe


def evaluate(name: str, problem_name: str, prior, args) -> dict:
    problem = build_problem(problem_name, prior, seed=args.seed)
    steps = args.steps or SAMPLERS[name][3 + bool(args.quick)]
    truths = phantom_dataset("test", args.images, prior.event_shape[-1], seed=args.seed).images.float()
    psnr, ssim, walls, calls, cost = [], [], [], 0, []
    kind = SAMPLERS[name][1]
    for index in range(args.images):
        truth = truths[index:index + 1]
        y = problem.simulate(truth.double(), generator=torch.Generator().manual_seed(args.seed + index))
        y = y.to(torch.complex64 if y.is_complex() else torch.float32)
        cost.append(network_cost(prior, args.num_chains, kind))  # before and after: the machine's load drifts
        post = run_sampler(name, problem, y, num_chains=args.num_chains, steps=steps, seed=args.seed + 100 + index)
        cost.append(network_cost(prior, args.num_chains, kind))
        mean = post.mean()[0].reshape(truth.shape[-2:]).double().numpy()
        ref = truth[0, 0].double().numpy()
        psnr.append(peak_signal_noise_ratio(ref, mean, data_range=1.0))
        ssim.append(structural_similarity(ref, mean, data_range=1.0))
        walls.append(post.wall_time)
        calls = network_calls(name, post)
    wall, call = statistics.mean(walls), statistics.mean(cost)
    return {"sampler": name, "problem": problem_name, "steps": steps, "psnr": statistics.mean(psnr),
            "ssim": statistics.mean(ssim), "nfe": post.nfe, "wall": wall, "call": kind, "cost": call,
            "overhead": wall / (calls * call)}


def throughput(name: str, prior, args) -> tuple[float, float, float]:
    """``(batched seconds, sequential seconds, ratio)`` for ``throughput_chains`` chains on the deblurring problem."""
    problem = build_problem("deblur", prior, seed=args.seed)
    truth = phantom_dataset("test", 1, prior.event_shape[-1], seed=args.seed).images.double()
    y = problem.simulate(truth, generator=torch.Generator().manual_seed(args.seed)).float()
    steps = args.throughput_steps
    batched = run_sampler(name, problem, y, num_chains=args.throughput_chains, steps=steps, seed=1).wall_time
    sequential = run_sampler(name, problem, y, num_chains=args.throughput_chains, steps=steps, seed=1,
                             batch_size=1).wall_time
    return batched, sequential, sequential / batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="phantom32")
    parser.add_argument("--samplers", nargs="*", default=list(SAMPLERS), choices=list(SAMPLERS),
                        help="samplers to evaluate (none: only the throughput)")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--images", type=int, default=8, help="held-out test phantoms per problem")
    parser.add_argument("--num-chains", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="override every sampler's steps")
    parser.add_argument("--throughput-sampler", default="dps", choices=list(SAMPLERS))
    parser.add_argument("--throughput-steps", type=int, default=20)
    parser.add_argument("--throughput-chains", type=int, default=16, help="chains batched vs one at a time (0: skip)")
    parser.add_argument("--throughput-repeats", type=int, default=3,
                        help="interleaved repeats of the throughput pair and the network-cost pair (medians printed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="1 image, 4 chains, short runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.images, args.num_chains, args.throughput_steps = 1, 4, 10
    prior = load_prior(args.prior)
    print(f"{args.prior}: {args.images} test image(s), {args.num_chains} chains, sigma_y = 0.05, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("| sampler | problem | steps | PSNR | SSIM | NFE | wall s/image | call | call s | overhead |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.samplers:
        for problem_name in args.problems:
            try:
                r = evaluate(name, problem_name, prior, args)
            except SamplerDivergence as err:  # reported in the table, not hidden
                print(f"| {name} | {problem_name} | – | diverged: {err} |||||||", flush=True)
                continue
            print(f"| {r['sampler']} | {r['problem']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                  f"{r['nfe']} | {r['wall']:.1f} | {r['call']} | {r['cost']:.4f} | {r['overhead']:.2f} |",
                  flush=True)
    if not args.throughput_chains:
        return
    kind, chains = SAMPLERS[args.throughput_sampler][1], args.throughput_chains
    print(f"\nthroughput ({args.throughput_sampler}, {args.throughput_steps} steps, deblur), {chains} chains:")
    ratios, bounds = [], []
    for r in range(args.throughput_repeats):  # interleaved, so that a drift in the machine's load hits both
        batched, sequential, ratio = throughput(args.throughput_sampler, prior, args)
        one, many = network_cost(prior, 1, kind), network_cost(prior, chains, kind)
        ratios.append(ratio)
        bounds.append(chains * one / many)
        print(f"  repeat {r + 1}: batched {batched:.1f} s, one at a time {sequential:.1f} s: {ratio:.2f}x; one network "
              f"call ({kind}) {one * 1000:.1f} ms at batch 1, {many * 1000:.1f} ms at batch {chains}: "
              f"{bounds[-1]:.2f}x per chain (the bound for batching)", flush=True)
    print(f"median: sampler {statistics.median(ratios):.2f}x, network bound {statistics.median(bounds):.2f}x")


if __name__ == "__main__":
    main()
