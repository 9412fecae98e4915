"""Sampler-side timings on the shipped phantom32 network: thread settings (and, with deepinv, samplers).

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", action="store_true", help="time the thread settings")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    if args.threads:
        threads(args)
    else:
        parser.error("choose a mode: --threads")


if __name__ == "__main__":
    main()
