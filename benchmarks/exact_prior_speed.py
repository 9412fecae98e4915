"""Two costs on the 32x32 lesion-mixture testbed, each measured side by side with the way it was done before.

1. The exact lesion-mixture denoiser ``E[x0 | x_t]`` (``LesionMixturePrior.denoise``: one real FFT pair over the
   half spectrum, the lesion inner products taken in Fourier) against the same formulas with full complex FFTs
   and the inner products in pixel space (two FFT pairs: the implementation before 2026-12-03, kept here as
   the reference), and the largest difference of the two outputs.
2. The split Gibbs likelihood step's square root ``(I - c A^T A)^{1/2} v`` applied exactly through the operator's
   ``gram_diagonal`` (deblurring, inpainting, MRI 4x) against the Chebyshev polynomial the samplers use
   otherwise (degree 12, split Gibbs SMC's default; degree 40, split Gibbs's), and their largest difference.
3. Both together: one split Gibbs SMC run (``--levels`` levels, the defaults otherwise) on case 0 of each
   problem, as it runs now and with the full-FFT denoiser and the degree-12 polynomial (the way it ran before),
   with the same generator seed, and the largest difference of the returned particles.

Batch 159 (the testbed's split Gibbs SMC cloud), float64, one thread, interleaved repeats, medians.

    OMP_NUM_THREADS=1 python benchmarks/exact_prior_speed.py [--batch 159] [--repeats 20] [--levels 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from exact_images import SIGMA_Y, make_case, make_prior, make_problems  # noqa: E402

from bayesinv.operators.base import operator_norm_squared  # noqa: E402
from bayesinv.priors.gaussian import batch_coefficients  # noqa: E402
from bayesinv.samplers.split_gibbs import _chebyshev_sqrt, likelihood_root  # noqa: E402
from bayesinv.samplers.split_gibbs_smc import split_gibbs_smc_particles  # noqa: E402


def full_fft_denoise(prior, x_t: torch.Tensor, t: int) -> torch.Tensor:
    """The reference: the denoiser's formulas with full complex FFTs (module docstring of ``lesion_mixture``)."""
    b = x_t.shape[0]
    alpha, sigma = (c[:1].reshape(1, 1, 1, 1) for c in batch_coefficients(prior.schedule, t, b))
    p = prior.power_spectrum
    var = alpha**2 * p + sigma**2
    u = x_t - alpha * prior.background_mean
    v = torch.fft.ifft2(torch.fft.fft2(u, norm="ortho") / var, norm="ortho").real.reshape(b, -1)
    offset_power = (torch.fft.fft2(prior.offsets.reshape(-1, *prior.event_shape), norm="ortho").abs() ** 2)
    a = float(alpha)
    lesion = a * (v @ prior.offsets.T) - 0.5 * a**2 * ((1 / var).reshape(1, -1) @ offset_power.reshape(
        offset_power.shape[0], -1).T)
    log_joint = prior.weights.log() + torch.cat([torch.zeros(b, 1, dtype=torch.float64), lesion], 1)
    resp = torch.softmax(log_joint, 1)
    mbar = (prior.background.mean_vector + resp[:, 1:] @ prior.offsets).reshape(x_t.shape)
    gain = alpha * p / var
    return mbar + torch.fft.ifft2(gain * torch.fft.fft2(x_t - alpha * mbar, norm="ortho"), norm="ortho").real


def median_ms(fns: dict, repeats: int) -> dict:
    """Interleaved repeats of each function (after one warm-up call each): median milliseconds per call."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=159)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--levels", type=int, default=20, help="split Gibbs SMC levels in part 3 (0: skip it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    prior = make_prior()
    x0 = prior.sample_n(args.batch, generator=g)
    print(f"denoiser, batch {args.batch}: ms per call (median of {args.repeats}), ratio, max |difference|")
    for t in (5, 50, 400):
        x_t = prior.schedule.alpha[t] * x0 + prior.schedule.sigma[t] * torch.randn(x0.shape, generator=g,
                                                                                  dtype=torch.float64)
        ms = median_ms({"half": lambda: prior.denoise(x_t, t), "full": lambda: full_fft_denoise(prior, x_t, t)},
                       args.repeats)
        diff = float((prior.denoise(x_t, t) - full_fft_denoise(prior, x_t, t)).abs().max())
        print(f"  t={t:3d}: half spectrum {ms['half']:6.2f}  full FFTs {ms['full']:6.2f}  "
              f"ratio {ms['full'] / ms['half']:.2f}x  max diff {diff:.1e}")
    print(f"likelihood-step square root, batch {args.batch}: ms per call, ratio, max |difference| to the exact root")
    for name, problem in make_problems(prior).items():
        op = problem.operator
        v = torch.randn(args.batch, *prior.event_shape, generator=g, dtype=torch.float64)
        top = 1.01 * operator_norm_squared(op, torch.zeros(1, *prior.event_shape, dtype=torch.float64), generator=g)
        c = 0.81 / top  # rho = 0.9 sigma_y / ||A||: c = rho^2 / sigma_y^2

        def cheb(degree):
            return lambda: _chebyshev_sqrt(lambda u: op.normal(u).real, v, c, top, degree)

        ms = median_ms({"exact": lambda: likelihood_root(op, v, c, top, 12), "cheb12": cheb(12),
                        "cheb40": cheb(40)}, args.repeats)
        exact = likelihood_root(op, v, c, top, 12)
        d12, d40 = (float((cheb(k)() - exact).abs().max()) for k in (12, 40))
        print(f"  {name:8s} exact {ms['exact']:6.2f}  Chebyshev 12: {ms['cheb12']:6.2f} "
              f"({ms['cheb12'] / ms['exact']:.1f}x, diff {d12:.1e})  Chebyshev 40: {ms['cheb40']:6.2f} "
              f"({ms['cheb40'] / ms['exact']:.1f}x, diff {d40:.1e})")
    if args.levels:
        print(f"split Gibbs SMC, {args.levels} levels, {args.batch} particles, case 0: seconds now / before")
        for name, problem in make_problems(prior).items():
            print(f"  {name:8s} " + sampler_comparison(prior, problem, name, args.batch, args.levels), flush=True)


def sampler_comparison(prior, problem, name: str, particles: int, levels: int) -> str:
    """One split Gibbs SMC run as it runs now and as before (full-FFT denoiser, Chebyshev root), same seed."""
    op = problem.operator
    _, _, _, y = make_case(prior, problem, name, 0)
    seconds, draws = [], []
    for before in (False, True):
        if before:  # instance attributes shadow the methods for this run only
            prior._denoise = lambda x_t, t: full_fft_denoise(prior, x_t.to(torch.float64), t).to(x_t.dtype)
            op.gram_diagonal = lambda: None
        start = time.perf_counter()
        out = split_gibbs_smc_particles(op, prior, y, SIGMA_Y, particles, generator=torch.Generator().manual_seed(0),
                                        steps=levels)
        seconds.append(time.perf_counter() - start)
        draws.append(out["x"])
        for attribute in ("_denoise", "gram_diagonal"):
            (prior if attribute == "_denoise" else op).__dict__.pop(attribute, None)
    diff = float((draws[0] - draws[1]).abs().max())
    return f"{seconds[0]:6.1f} / {seconds[1]:6.1f}  ({seconds[1] / seconds[0]:.2f}x faster, max diff {diff:.1e})"


if __name__ == "__main__":
    main()
