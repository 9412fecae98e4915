"""Speed and adjoint accuracy of every registered operator (``bayesinv.operators.make_operator``).

For each operator at 32x32 and 64x64 (one channel, default options, seed 0), prints the time of
``A``, ``A^H`` and ``A^+`` on a batch of 16 float32 images (best of 5, after a warm-up; operator
construction excluded) and the float64 adjointness error ``|<Ax, y> - <x, A^H y>| / (|Ax| |y|)``.

    python benchmarks/operators.py [--sizes 32 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import time

import torch

from bayesinv.operators import OPERATORS, inner, make_operator


def best_ms(fn, arg, repeats: int = 5) -> float:
    fn(arg)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def rand(shape, complex_, dtype, g):
    x = torch.randn(*shape, generator=g, dtype=dtype)
    return torch.complex(x, torch.randn(*shape, generator=g, dtype=dtype)) if complex_ else x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}, batch {args.batch}, float32")
    print(f"{'operator':<16} {'size':>4} {'A ms':>8} {'A^H ms':>8} {'A^+ ms':>8} {'adjoint err':>12}")
    for size in args.sizes:
        for name in OPERATORS:
            op = make_operator(name, (1, size, size), seed=0)
            g = torch.Generator().manual_seed(0)
            x = rand((args.batch, *op.in_shape), op.input_complex, torch.float32, g)
            row = f"{name:<16} {size:>4} {best_ms(op, x):>8.2f}"
            if op.linear:
                y = rand((args.batch, *op.out_shape), op.output_complex, torch.float32, g)
                x64, y64 = (rand((2, *s), c, torch.float64, g) for s, c in
                            ((op.in_shape, op.input_complex), (op.out_shape, op.output_complex)))
                ax = op(x64)
                err = (inner(ax, y64) - inner(x64, op.adjoint(y64))).abs() / (ax.norm() * y64.norm())
                row += f" {best_ms(op.adjoint, y):>8.2f} {best_ms(op.pinv, y):>8.2f} {float(err.max()):>12.1e}"
            else:
                row += f" {'-':>8} {'-':>8} {'-':>12}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
