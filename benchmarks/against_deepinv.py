"""Samplers against deepinv on the shipped phantom32 network, and thread settings.

Default mode: DPS and DDRM of bayesinv and of deepinv side by side on the same network
(``bayesinv.priors.load_prior("phantom32")``, wrapped as a deepinv denoiser ``D(x, sigma)``: the
discrete timestep whose noise-to-signal ratio is closest to ``sigma``, one network call), on one
32x32 Gaussian deblur (std 1.5, circular, ``sigma_y = 0.05``), with the same number of network calls
(``--steps`` DPS steps, ``--ddrm-steps`` DDRM steps) and ``--chains`` chains, float32. ``ALD``: bayesinv's
annealed Langevin (``--langevin-levels`` noise levels from 20 to 0.01 x ``--langevin-steps`` steps) against deepinv's
closest, a posterior SDE with Jalal et al.'s Score-ALD likelihood (``ALDDataFidelity``) on a variance-exploding SDE
over the same noise range, Euler-Maruyama with as many steps (one forward network call per step in both; deepinv
has no annealed Langevin with several steps per level). ``--repeats``
rounds alternate which library goes first; printed are the median wall times, the median of the
per-round ratios, and the overhead ``wall / (NFE x one network call)`` with the network call (the
forward + VJP DPS needs, the forward DDRM needs, at the same batch) timed in the same rounds. The two
libraries use different discretisations of the diffusion, so samples are not compared (the cost
per step is).

    python benchmarks/against_deepinv.py [--repeats 3] [--steps 50] [--ddrm-steps 20] [--chains 16] [--samplers DPS DDRM ALD]

``--threads``: one network forward + backward (the VJP DPS needs) at batch 16, 1x32x32, in fresh
subprocesses for ``torch.set_num_threads`` 1 and 2 crossed with ``OMP_WAIT_POLICY`` unset (the OpenMP
default, which spins) and ``PASSIVE``; ``--repeats`` rounds rotate the order of the four settings; each
round starts every setting once and times ``--calls`` passes after a warm-up. Prints per setting the
median seconds per pass and the median ratio to the first setting (1 thread, PASSIVE).

    python benchmarks/against_deepinv.py --threads [--repeats 5] [--calls 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SETTINGS = [(1, "PASSIVE"), (1, None), (2, "PASSIVE"), (2, None)]

_CHILD = r"""
import json, sys, time, torch
from bayesinv.priors import load_prior
torch.set_num_threads(int(sys.argv[1]))
calls = int(sys.argv[2])
net = load_prior("phantom32").denoiser
g = torch.Generator().manual_seed(0)
x = torch.randn(16, 1, 32, 32, generator=g)
def one():
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(xg, 500).sum(), xg)
    return grad
one()
times = []
for _ in range(calls):
    t = time.perf_counter(); one(); times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def time_setting(threads: int, policy: str | None, calls: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", _CHILD, str(threads), str(calls)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def threads(args) -> None:
    print(f"one phantom32 forward+backward, batch 16, 1x32x32; {args.repeats} rounds x {args.calls} passes, "
          f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}")
    medians: dict = {s: [] for s in SETTINGS}
    for r in range(args.repeats):
        order = SETTINGS[r % 4:] + SETTINGS[: r % 4]
        for setting in order:
            medians[setting].append(statistics.median(time_setting(*setting, args.calls)))
    base = medians[SETTINGS[0]]
    print(f"{'threads':>7} {'OMP_WAIT_POLICY':>15} {'s / pass':>9} {'worst round':>11} {'ratio to 1/PASSIVE':>18}")
    for (n, policy), values in medians.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"{n:>7} {policy or '(default)':>15} {statistics.median(values):>9.3f} {max(values):>11.3f} "
              f"{ratio:>18.2f}", flush=True)


def _wrap(prior, dinv):
    """The prior's denoiser as a deepinv ``Denoiser``: ``D(x, sigma)`` for ``x = x0 + sigma n``."""
    import torch

    class Wrapped(dinv.models.Denoiser):
        def __init__(self):
            super().__init__()
            self.denoiser = prior.denoiser
            schedule = prior.denoiser.schedule
            t = torch.arange(schedule.num_steps)
            alpha, sigma = schedule.coefficients(t, torch.zeros(schedule.num_steps, dtype=torch.float64))
            self.ratio = (sigma / alpha).reshape(-1).to(torch.float64)
            self.alpha = alpha.reshape(-1).to(torch.float64)

        def forward(self, x, sigma, *args, **kwargs):
            sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)[:1]
            t = int((self.ratio - sigma).abs().argmin())
            return self.denoiser(float(self.alpha[t]) * x, t)

    return Wrapped()


def samplers(args) -> None:
    import torch

    from bayesinv import Gaussian, InverseProblem
    from bayesinv.operators import Blur
    from bayesinv.priors import load_prior
    from bayesinv.samplers import sample_annealed_langevin, sample_ddrm, sample_dps
    from operators import import_deepinv  # benchmarks/operators.py

    dinv = import_deepinv()
    prior = load_prior("phantom32")
    op = Blur.gaussian((1, 32, 32), 1.5)
    problem = InverseProblem(op, Gaussian(0.05), prior)
    physics = dinv.physics.BlurFFT(img_size=(1, 32, 32), filter=op.kernel.to(torch.float32)[None, None])
    x_true = prior.sample_n(1, steps=20, generator=torch.Generator().manual_seed(0))
    y = problem.simulate(x_true.to(torch.float32), generator=torch.Generator().manual_seed(1))
    y_batch = y.expand(args.chains, *y.shape[1:]).contiguous()
    wrapped = _wrap(prior, dinv)
    n = args.chains
    dps_d = dinv.sampling.DPS(wrapped, num_steps=args.steps, dtype=torch.float32,
                              rng=torch.Generator().manual_seed(2))
    ddrm_d = dinv.sampling.DDRM(wrapped, sigmas=np.linspace(1, 0, args.ddrm_steps))
    # annealed Langevin (Song & Ermon 2019 with Jalal et al.'s likelihood) has no same-form deepinv sampler; the
    # closest is deepinv's posterior SDE with the Score-ALD likelihood of Jalal et al. (ALDDataFidelity) on a
    # variance-exploding SDE over the same noise range, Euler-Maruyama with one network call per step
    levels, per_level = args.langevin_levels, args.langevin_steps
    physics_noisy = dinv.physics.BlurFFT(img_size=(1, 32, 32), filter=op.kernel.to(torch.float32)[None, None],
                                         noise_model=dinv.physics.GaussianNoise(sigma=0.05))
    ald_d = dinv.sampling.PosteriorDiffusion(
        data_fidelity=dinv.sampling.ALDDataFidelity(), denoiser=wrapped,
        sde=dinv.sampling.VarianceExplodingDiffusion(sigma_min=0.01, sigma_max=20.0, dtype=torch.float32),
        solver=dinv.sampling.EulerSolver(timesteps=np.linspace(1, 0, levels * per_level + 1),
                                         rng=torch.Generator().manual_seed(2)),
        dtype=torch.float32, minus_one_one=False)
    runs = {
        "DPS": (lambda: sample_dps(problem, y, num_samples=n, steps=args.steps, progress=False,
                                   generator=torch.Generator().manual_seed(3)),
                lambda: dps_d(y_batch, physics, x_init=(n, 1, 32, 32)), args.steps, "vjp"),
        "DDRM": (lambda: sample_ddrm(problem, y, num_samples=n, steps=args.ddrm_steps, progress=False,
                                     generator=torch.Generator().manual_seed(3)),
                 lambda: ddrm_d(y_batch, physics, seed=3), args.ddrm_steps, "forward"),
        "ALD": (lambda: sample_annealed_langevin(problem, y, num_samples=n, steps=levels, steps_per_level=per_level,
                                                 noise_levels=(20.0, 0.01), progress=False,
                                                 generator=torch.Generator().manual_seed(3)),
                lambda: ald_d(y_batch, physics_noisy, x_init=(n, 1, 32, 32), seed=3), levels * per_level, "forward"),
    }
    runs = {k: v for k, v in runs.items() if k in args.samplers}
    x = torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(4))

    def network_call(kind):
        t0 = time.perf_counter()
        if kind == "vjp":
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(prior.denoiser(xg, 500).sum(), xg)
        else:
            with torch.no_grad():
                prior.denoiser(x, 500)
        return time.perf_counter() - t0

    print(f"torch {torch.__version__}, deepinv {dinv.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; {n} chains, 1x32x32 deblur, {args.repeats} interleaved rounds")
    print(f"{'sampler':<6} {'NFE':>4} {'bayesinv s':>10} {'deepinv s':>9} {'ratio':>6} {'range':>11} "
          f"{'call s':>7} {'overhead bayesinv':>17} {'deepinv':>8}")
    for name, (ours, theirs, nfe, kind) in runs.items():
        walls = {"ours": [], "theirs": []}
        calls = []
        for r in range(args.repeats):
            order = [("ours", ours), ("theirs", theirs)]
            for key, fn in (order if r % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                fn()
                walls[key].append(time.perf_counter() - t0)
            calls.append(statistics.median(network_call(kind) for _ in range(5)))
        ratios = [a / b for a, b in zip(walls["ours"], walls["theirs"])]
        call = statistics.median(calls)
        med = statistics.median
        print(f"{name:<6} {nfe:>4} {med(walls['ours']):>10.2f} {med(walls['theirs']):>9.2f} {med(ratios):>6.2f} "
              f"{f'{min(ratios):.2f}-{max(ratios):.2f}':>11} {call:>7.3f} "
              f"{med(walls['ours']) / (nfe * call):>17.2f} {med(walls['theirs']) / (nfe * call):>8.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", action="store_true", help="time the thread settings instead")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--ddrm-steps", type=int, default=20)
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--langevin-levels", type=int, default=10)
    parser.add_argument("--langevin-steps", type=int, default=10, help="annealed Langevin steps per noise level")
    parser.add_argument("--samplers", nargs="+", default=["DPS", "DDRM", "ALD"], choices=["DPS", "DDRM", "ALD"])
    args = parser.parse_args()
    if args.threads:
        threads(args)
    else:
        samplers(args)


if __name__ == "__main__":
    main()
