"""Speed and adjoint accuracy of every registered operator (``bayesinv.operators.make_operator``).

For each operator at 32x32 and 64x64 (one channel, default options, seed 0), prints the time of
``A``, ``A^H`` and ``A^+`` on a batch of 16 float32 images (best of 5, after a warm-up; operator
construction excluded) and the float64 adjointness error ``|<Ax, y> - <x, A^H y>| / (|Ax| |y|)``.

    python benchmarks/operators.py [--sizes 32 64] [--batch 16]

``--against deepinv`` instead times bayesinv and deepinv side by side on the same definitions (FFT
blur with circular boundaries, inpainting, single-coil MRI, dense Gaussian compressed sensing with
the same matrix), ``A`` then ``A^H`` on a batch of 64 float32 64x64 images: ``--repeats`` rounds
that alternate which library goes first, each timing ``--calls`` calls; it prints the medians of the
per-round times and of the per-round ratios, and the largest absolute difference of the outputs.

    python benchmarks/operators.py --against deepinv [--repeats 21] [--calls 20] [--families inpainting]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import torch

from bayesinv.operators import OPERATORS, finite_checks, inner, make_operator


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


def import_deepinv():
    """Import deepinv; where torchvision's compiled ops cannot load (a CUDA torchvision next to a CPU
    torch), skip only their fake-tensor registrations, which none of the operators timed here uses."""
    try:
        import deepinv
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith(("torchvision.", "deepinv"))]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import deepinv
    return deepinv


def _pairs(size: int, batch: int):
    """(family, bayesinv pair, deepinv pair, bayesinv input, deepinv input, compare) for each family."""
    dinv = import_deepinv()
    from bayesinv.operators import MRI, Blur, Inpaint, MatrixOperator, cartesian_mask, gaussian_kernel, random_mask

    g = torch.Generator().manual_seed(0)
    shape = (1, size, size)
    x = torch.rand(batch, *shape, generator=g)
    kernel = gaussian_kernel(13, 2.0).to(torch.float32)
    blur, blur_d = Blur(shape, kernel), dinv.physics.BlurFFT(img_size=shape, filter=kernel[None, None])
    mask = random_mask((size, size), 0.5, g)
    inp, inp_d = Inpaint(shape, mask), dinv.physics.Inpainting(img_size=shape, mask=mask.to(torch.float32)[None])
    kmask = cartesian_mask(size, 4, 0.08, generator=g)
    mri, mri_d = MRI(shape, kmask, input_complex=True), dinv.physics.MRI(mask=kmask.to(torch.float32), img_size=shape)
    xc = torch.complex(x, torch.rand(batch, *shape, generator=g))
    x_d2 = torch.cat([torch.fft.ifftshift(xc, dim=(-2, -1)).real, torch.fft.ifftshift(xc, dim=(-2, -1)).imag], dim=1)
    cs_d = dinv.physics.CompressedSensing(m=size * size // 4, img_size=shape, rng=torch.Generator().manual_seed(0))
    cs = MatrixOperator(cs_d._A.detach().clone(), shape)

    def mri_diff(ours, theirs, adjoint):
        # deepinv's centred FFT puts the image origin at the centre (ifftshift before the FFT): undo it
        theirs = torch.complex(theirs[:, 0], theirs[:, 1])[:, None]
        if adjoint:
            theirs = torch.fft.ifftshift(theirs, dim=(-2, -1))
        return (ours - theirs).abs().max()

    def plain_diff(ours, theirs, adjoint):
        return (ours - theirs.reshape(ours.shape)).abs().max()

    return [("blur (FFT, circular)", blur, blur_d, x, x, plain_diff),
            ("inpainting", inp, inp_d, x, x, plain_diff),
            ("MRI (single coil)", mri, mri_d, xc, x_d2, mri_diff),
            ("compressed sensing", cs, cs_d, x, x, plain_diff)]


def _time(fn, arg, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn(arg)
    return (time.perf_counter() - t) / calls


def against_deepinv(args) -> None:
    dinv = import_deepinv()
    print(f"torch {torch.__version__}, deepinv {dinv.__version__}, threads {torch.get_num_threads()}, batch "
          f"{args.batch} of 1x{args.size}x{args.size} float32, A then A^H; {args.repeats} interleaved rounds of "
          f"{args.calls} calls; medians")
    print("bayesinv with its NaN/inf input checks (the default) and without (finite_checks(False), as in a sampler loop)")
    print(f"{'family':<22} {'bayesinv ms':>11} {'deepinv ms':>10} {'ratio':>6} {'ratio IQR':>11} "
          f"{'unchecked ms':>12} {'ratio':>6} {'max |diff| A':>13} {'A^H':>9}")
    with torch.no_grad():
        for name, ours, theirs, x, x_d, diff in _pairs(args.size, args.batch):
            if args.families and not any(name.startswith(f) for f in args.families):
                continue
            def run_ours(v, op=ours):
                return op.adjoint(op(v))

            def run_theirs(v, op=theirs):
                return op.A_adjoint(op.A(v))

            y, y_d = ours(x), theirs.A(x_d)
            err_a = float(diff(y, y_d, False))
            err_h = float(diff(ours.adjoint(y), theirs.A_adjoint(y_d), True))
            def run_unchecked(v, op=ours):
                with finite_checks(False):
                    return op.adjoint(op(v))

            run_ours(x), run_theirs(x_d), run_unchecked(x)  # warm-up
            t_ours, t_theirs, t_free, ratios, ratios_free = [], [], [], [], []
            for r in range(args.repeats):
                order = [(run_ours, x, t_ours), (run_theirs, x_d, t_theirs), (run_unchecked, x, t_free)]
                for fn, arg, out in order[r % 3:] + order[: r % 3]:  # rotate who goes first
                    out.append(_time(fn, arg, args.calls))
                ratios.append(t_ours[-1] / t_theirs[-1])
                ratios_free.append(t_free[-1] / t_theirs[-1])
            q = statistics.quantiles(ratios, n=4)
            med = statistics.median
            print(f"{name:<22} {1e3 * med(t_ours):>11.3f} {1e3 * med(t_theirs):>10.3f} {med(ratios):>6.2f} "
                  f"{f'{q[0]:.2f}-{q[2]:.2f}':>11} {1e3 * med(t_free):>12.3f} {med(ratios_free):>6.2f} "
                  f"{err_a:>13.1e} {err_h:>9.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=None, help="16 (registry table) or 64 (--against)")
    parser.add_argument("--against", choices=["deepinv"], default=None)
    parser.add_argument("--size", type=int, default=64, help="image size for --against")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--families", nargs="+", default=None, choices=["blur", "inpainting", "MRI", "compressed"],
                        help="with --against: only these families (default all)")
    args = parser.parse_args()
    if args.against:
        args.batch = args.batch or 64
        against_deepinv(args)
        return
    args.batch = args.batch or 16
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
