"""Where does the phantom32 prior lose its lesions? Detector, sampler and weights, with intervals (resumable).

Subcommands (results under benchmarks/results/prior_lesions/; samples cached in its ``cache/``, not committed):

* ``detector``: the lesion detectors on TRUE phantoms. Each lesion phantom is generated twice from one seed,
  with and without its lesion (the draws are the same), so its radius (from the mask: 5 pixels for r < sqrt 2,
  9 for r < 2, 13 for r = 2) and its *visible* contrast (the difference at the centre, after clipping to [0, 1])
  are known. Detectors: ``median5`` (the model card's: max |x - median_5x5(x)| over the image, from
  :func:`bayesinv.priors.quality.lesion_scores`) and ``scan`` (max over body pixels of the disc-minus-annulus
  statistic of :func:`bayesinv.diagnostics.lesion_scan.scan_lesions`). Thresholds: the 95% quantile of the
  score on lesion-free train phantoms (5% false rate by construction); false/missed rates with Clopper-Pearson
  intervals on the calibration split, by radius and visible contrast.
* ``sample --setting S --num N [--weights W --tag T]``: N unconditional draws of setting S (``ddim50``,
  ``ddim100``, ``ddim250``, ``ddpm50``, ``ddpm100``, ``ddpm250``, ``ddpm1000``, ``heun25``: Heun's method on the
  probability-flow ODE over 25 intervals = 51 network calls, Karras et al. 2022, Alg. 1, ``DiffusionPrior.sample_n(
  method="heun", steps=26)``; ``heunk25``: the same on Karras's rho = 7 grid of noise levels, ``grid="karras"``),
  in chunks of 100
  (each chunk seeded by its index; an existing chunk is kept, so a rerun resumes or extends).
* ``report [--tag T]``: per setting, the detector rate of the samples with its 95% Clopper-Pearson interval
  against the data's (test split, prevalence 0.5), the implied prevalence ``(rate - false) / (hit - false)``,
  and the contrast/radius of the detected spots (:func:`bayesinv.diagnostics.lesion_scan.fit_disc` at the
  detector's pixel) against the data's, with two-sample KS p-values. Writes ``<tag>.json`` and ``<tag>.md``.
* ``sharpness --tags T... [--setting S]``: the samples' power spectrum over the data's, and the ``scan`` rate and
  fitted radii of the data blurred by Gaussians of 0.4-0.8 px against the samples' radii (KS).
* ``quality --weights W --tag T``: the denoising MSE ratio against the Wiener filter at the noise levels of
  ``benchmarks/prior_quality.py`` (same test phantoms, same noise), next to the shipped weights' on the same
  noisy images, with the paired z of the two networks' per-image MSEs (< 0: W denoises better than shipped).

Usage: ``python benchmarks/prior_lesions.py detector``; ``... sample --setting ddim50 --num 2000``;
``... report``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import ndimage, stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact_images import shard_spec  # noqa: E402
from prior_quality import LINEAR_TRAIN_SEED, NOISE_LEVELS  # noqa: E402

from bayesinv._validation import check_device  # noqa: E402
from bayesinv.data.phantoms import SPLIT_SEEDS, ellipse_phantoms, phantom_dataset  # noqa: E402
from bayesinv.diagnostics.hallucination import clopper_pearson  # noqa: E402
from bayesinv.diagnostics.lesion_scan import fit_disc, scan_lesions  # noqa: E402
from bayesinv.priors.hub import build_prior  # noqa: E402
from bayesinv.priors.networks import load_weights  # noqa: E402
from bayesinv.priors.quality import compare_denoisers, fit_linear_denoiser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "prior_lesions"
CACHE = RESULTS / "cache"
MODEL = ROOT / "models" / "phantom32"
CHUNK = 100
SETTINGS = ("ddim50", "heun25", "heunk25", "ddpm50", "ddim100", "ddpm100", "ddim250", "ddpm250", "ddpm1000")
DETECTORS = ("median5", "scan")


# -- detectors ------------------------------------------------------------------------------------------------
def detect(images: torch.Tensor, detector: str) -> tuple[np.ndarray, torch.Tensor]:
    """Per image: the detector's score ``(N,)`` and the pixel ``(N, 2)`` where it peaks."""
    if detector == "median5":
        x = images.detach().cpu().double().numpy()[:, 0]
        resid = np.abs(x - ndimage.median_filter(x, size=(1, 5, 5))).reshape(len(x), -1)
        idx = torch.from_numpy(resid.argmax(1))
        return resid.max(1), torch.stack([idx // x.shape[-1], idx % x.shape[-1]], 1)
    if detector == "scan":
        found = scan_lesions(images.detach().cpu())
        return found.score.numpy(), found.center
    raise ValueError(f"unknown detector {detector!r}; choose one of {DETECTORS}")


def paired_lesions(num: int, seed: int, split: str = "calibration"):
    """Phantoms with a lesion, the same phantoms without it, radius class (mask pixels) and visible contrast."""
    with_lesion = ellipse_phantoms(num, 32, generator=torch.Generator().manual_seed(SPLIT_SEEDS[split] + seed),
                                   lesion_prob=1.0)
    without = ellipse_phantoms(num, 32, generator=torch.Generator().manual_seed(SPLIT_SEEDS[split] + seed),
                               lesion_prob=0.0)
    c = with_lesion.lesion_centers.long()
    diff = (with_lesion.images - without.images)[torch.arange(num), 0, c[:, 0], c[:, 1]]
    return with_lesion, without, with_lesion.lesion_masks.sum((1, 2, 3)).numpy(), diff.numpy()


def thresholds(num: int = 4000) -> dict[str, float]:
    """Per detector, the 95% quantile of its score on lesion-free train phantoms (seed 600000)."""
    free = phantom_dataset("train", num, 32, seed=600_000, lesion_prob=0.0).images
    return {d: float(np.quantile(detect(free, d)[0], 0.95)) for d in DETECTORS}


def rate(hits: int, n: int) -> dict:
    lo, hi = clopper_pearson(hits, n)
    return {"k": int(hits), "n": int(n), "rate": hits / max(n, 1), "lo": lo, "hi": hi}


def fmt(r: dict) -> str:
    return f"{100 * r['rate']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}] ({r['k']}/{r['n']})"


def cmd_detector(args) -> None:
    thr = thresholds(args.num)
    les, free, pixels, visible = paired_lesions(args.num, seed=0)
    out = {"thresholds": thr, "num": args.num}
    for d in DETECTORS:
        s1, _ = detect(les.images, d)
        s0, _ = detect(free.images, d)
        hit, false = s1 > thr[d], s0 > thr[d]
        row = {"false": rate(false.sum(), len(s0)), "hit": rate(hit.sum(), len(s1)), "by_radius": {}, "by_contrast": {}}
        for name, sel in (("r<1.41 (5 px)", pixels == 5), ("1.41<=r<2 (9 px)", pixels == 9), ("r=2", pixels >= 13)):
            row["by_radius"][name] = rate(hit[sel].sum(), sel.sum())
        edges = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (np.abs(visible) >= lo) & (np.abs(visible) < hi)
            row["by_contrast"][f"|visible contrast| in [{lo}, {hi})"] = rate(hit[sel].sum(), sel.sum())
        out[d] = row
        print(f"[{d}] threshold {thr[d]:.3f}: false {fmt(row['false'])}, hit {fmt(row['hit'])}")
        for key in ("by_radius", "by_contrast"):
            for name, r in row[key].items():
                print(f"    hit, {name}: {fmt(r)}")
    out["visible_contrast_quantiles"] = np.quantile(np.abs(visible), [0.05, 0.25, 0.5, 0.75, 0.95]).tolist()
    (RESULTS / "detector.json").write_text(json.dumps(out, indent=2) + "\n")


# -- sampling -------------------------------------------------------------------------------------------------
def load_model(weights: str | None, device: str = "cpu"):
    """The phantom32 prior (shipped weights, or ``weights``) on ``device``."""
    prior = build_prior(MODEL)
    if weights:
        load_weights(prior.network, weights)
    return prior.to(device)


def draw(prior, setting: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``heun<N>``/``heunk<N>``: Heun over N intervals (N + 1 timesteps, uniform/Karras grid); else DDIM/DDPM."""
    if setting.startswith("heun"):
        grid = "karras" if setting.startswith("heunk") else "uniform"
        method, steps = "heun", int(setting.removeprefix("heunk").removeprefix("heun")) + 1
    else:
        grid, method, steps = "uniform", setting[:4], int(setting[4:])
    with torch.inference_mode():
        return prior.sample_n(n, steps=steps, method=method, grid=grid, generator=generator, batch_size=n)


def cmd_sample(args) -> None:
    folder = CACHE / args.tag / args.setting
    folder.mkdir(parents=True, exist_ok=True)
    prior = load_model(args.weights, args.device)
    shard, shards = args.shard
    for k in range(shard, -(-args.num // CHUNK), shards):
        path = folder / f"chunk{k:04d}.safetensors"
        if path.exists():
            continue
        t0 = time.perf_counter()
        seed = zlib.crc32(args.setting.encode()) + 7919 * k
        x = draw(prior, args.setting, CHUNK, torch.Generator().manual_seed(seed))
        save_file({"samples": x.cpu().contiguous()}, str(path))
        print(f"{time.strftime('%H:%M:%S')} {args.tag}/{args.setting} chunk {k}: {time.perf_counter() - t0:.0f} s "
              f"({(time.perf_counter() - t0) / CHUNK:.2f} s/sample)", flush=True)


def load_samples(tag: str, setting: str) -> torch.Tensor | None:
    paths = sorted((CACHE / tag / setting).glob("chunk*.safetensors"))
    return torch.cat([load_file(str(p))["samples"] for p in paths]) if paths else None


# -- report ---------------------------------------------------------------------------------------------------
def spot_stats(images: torch.Tensor, detector: str, thr: float) -> dict:
    score, center = detect(images, detector)
    fit = fit_disc(images.detach().cpu(), center)
    hit = score > thr
    return {"rate": rate(hit.sum(), len(score)), "score": score, "contrast": fit.contrast.numpy()[hit],
            "radius": fit.radius.numpy()[hit]}


def compare(sample: dict, data: dict) -> dict:
    out = {"rate": sample["rate"], "score_quantiles": np.quantile(sample["score"], [0.25, 0.5, 0.75, 0.9]).tolist(),
           "score_ks_p": float(stats.ks_2samp(sample["score"], data["score"]).pvalue)}
    for key in ("contrast", "radius"):
        a, b = sample[key], data[key]
        out[f"{key}_quantiles"] = np.quantile(a, [0.1, 0.5, 0.9]).tolist() if len(a) else []
        out[f"{key}_ks_p"] = float(stats.ks_2samp(a, b).pvalue) if len(a) >= 5 else float("nan")
        out[f"{key}_hist"] = np.histogram(a, bins=HIST_BINS[key])[0].tolist()
    return out


HIST_BINS = {"contrast": np.linspace(-0.6, 0.6, 13), "radius": np.linspace(0.5, 3.0, 11)}


def cmd_report(args) -> None:
    det = json.loads((RESULTS / "detector.json").read_text())
    data_images = phantom_dataset("test", args.num_data, 32, seed=0, lesion_prob=0.5).images
    report: dict = {"tag": args.tag, "detectors": {}}
    lines = [f"# Prior samples' lesions: {args.tag}", "",
             f"`python benchmarks/prior_lesions.py report --tag {args.tag}"
             + (f" --name {args.name}`" if args.name else "`"), ""]
    for d in DETECTORS:
        thr = det["thresholds"][d]
        false, hit = det[d]["false"]["rate"], det[d]["hit"]["rate"]
        data = spot_stats(data_images, d, thr)
        rows = {"data": compare(data, data)}
        for setting in SETTINGS:
            x = load_samples(args.tag, setting)
            if x is not None:
                rows[setting] = compare(spot_stats(x, d, thr), data)
        lines += [f"## Detector `{d}` (threshold {thr:.3f}: false {100 * false:.1f}%, hit {100 * hit:.1f}% on true "
                  "phantoms)", "",
                  "| images | detector rate [95% CP] | implied prevalence | score median | score KS p | "
                  "contrast 10/50/90% | contrast KS p | radius 10/50/90% | radius KS p |", "|---" * 9 + "|"]
        for name, r in rows.items():
            prev = (r["rate"]["rate"] - false) / (hit - false)
            q = ", ".join(f"{v:.2f}" for v in r["contrast_quantiles"])
            qr = ", ".join(f"{v:.2f}" for v in r["radius_quantiles"])
            lines.append(f"| {name} | {fmt(r['rate'])} | {prev:.2f} | {r['score_quantiles'][1]:.3f} | "
                         f"{r['score_ks_p']:.2g} | {q} | {r['contrast_ks_p']:.2g} | {qr} | {r['radius_ks_p']:.2g} |")
        lines.append("")
        for key in ("contrast", "radius"):
            edges = HIST_BINS[key]
            lines += [f"{key.capitalize()} of the detected spots (fit_disc at the detector's pixel), fraction per bin:",
                      "", "| images | " + " | ".join(f"[{a:.2f}, {b:.2f})" for a, b in zip(edges[:-1], edges[1:]))
                      + " |", "|---" * len(edges) + "|"]
            for name, r in rows.items():
                total = max(sum(r[f"{key}_hist"]), 1)
                lines.append(f"| {name} (n={sum(r[f'{key}_hist'])}) | "
                             + " | ".join(f"{c / total:.2f}" for c in r[f"{key}_hist"]) + " |")
            lines.append("")
        report["detectors"][d] = {"threshold": thr, "rows": rows}
    text = "\n".join(lines)
    print(text)
    name = args.name or args.tag
    (RESULTS / f"{name}.md").write_text(text + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")


def power_spectrum(images: torch.Tensor) -> np.ndarray:
    """Radially averaged power spectrum of ``images - their mean`` (mean over images), by integer wavenumber."""
    x = images.detach().cpu().double()[:, 0]
    power = (torch.fft.fft2(x - x.mean((-2, -1), keepdim=True)).abs() ** 2).mean(0).numpy()
    k = np.fft.fftfreq(x.shape[-1]) * x.shape[-1]
    ring = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round().astype(int).ravel()
    return np.bincount(ring, power.ravel()) / np.bincount(ring)


SHARPNESS_WAVENUMBERS = (2, 4, 8, 12, 16, 20)
BLURS = (0.4, 0.6, 0.8)


def cmd_sharpness(args) -> None:
    """Are the samples' lesions too large or too soft? The power spectrum of the samples over the data's, and the
    ``scan`` detector's rate and fitted radii on the data blurred by a Gaussian of ``BLURS`` px: if a blur makes
    the data's radius histogram the samples', the samples lack edges, not small lesions."""
    thr = json.loads((RESULTS / "detector.json").read_text())["thresholds"]["scan"]
    data = phantom_dataset("test", args.num_data, 32, seed=0, lesion_prob=0.5).images
    ref = power_spectrum(data)
    images = {"data": data}
    images.update({f"data blurred {b} px": torch.from_numpy(ndimage.gaussian_filter(data.numpy(), (0, 0, b, b)))
                   for b in BLURS})
    for tag in args.tags:
        x = load_samples(tag, args.setting)
        if x is None:
            raise SystemExit(f"no cached {args.setting} samples for tag {tag!r}: run `sample` first")
        images[f"{tag} {args.setting} ({len(x)})"] = x
    spots = {name: spot_stats(x, "scan", thr) for name, x in images.items()}
    sample_names = list(images)[1 + len(BLURS):]
    ks = " | ".join(f"radius KS p vs {n}" for n in sample_names)
    lines = [f"`python benchmarks/prior_lesions.py sharpness --setting {args.setting} --tags {' '.join(args.tags)}`",
             "", "| images | power / data's at k = " + ", ".join(map(str, SHARPNESS_WAVENUMBERS))
             + " | `scan` rate | radius fraction per bin " + ", ".join(f"[{a:.2f}, {b:.2f})" for a, b in
                                                               zip(HIST_BINS["radius"][2:7], HIST_BINS["radius"][3:8]))
             + f" | {ks} |", "|---" * (4 + len(sample_names)) + "|"]
    out = {}
    for name, x in images.items():
        ratio = power_spectrum(x)[list(SHARPNESS_WAVENUMBERS)] / ref[list(SHARPNESS_WAVENUMBERS)]
        radius = spots[name]["radius"]
        hist = np.histogram(radius, bins=HIST_BINS["radius"])[0] / max(len(radius), 1)
        pvals = [float(stats.ks_2samp(radius, spots[n]["radius"]).pvalue) for n in sample_names]
        out[name] = {"power_ratio": ratio.tolist(), "rate": spots[name]["rate"], "radius_hist": hist.tolist(),
                     "radius_ks_p_vs_samples": pvals}
        lines.append(f"| {name} | " + ", ".join(f"{v:.3f}" for v in ratio) + f" | {fmt(spots[name]['rate'])} | "
                     + ", ".join(f"{v:.2f}" for v in hist[2:7]) + " | " + " | ".join(f"{p:.2g}" for p in pvals) + " |")
    text = "\n".join(lines)
    print(text)
    (RESULTS / f"sharpness_{args.setting}.md").write_text(text + "\n")
    (RESULTS / f"sharpness_{args.setting}.json").write_text(json.dumps(out, indent=1, default=float) + "\n")


def cmd_quality(args) -> None:
    linear = fit_linear_denoiser(phantom_dataset("train", 20000, 32, seed=LINEAR_TRAIN_SEED).images)
    test = phantom_dataset("test", args.num_test, 32, seed=0).images
    rows = compare_denoisers(load_model(args.weights), linear, test, NOISE_LEVELS,
                             generator=torch.Generator().manual_seed(0), reference=load_model(None))
    out = {"shipped": [r._replace(mse_prior=r.mse_reference)._asdict() for r in rows],
           args.tag: [r._asdict() for r in rows]}
    print(f"{'sigma':>6} {'ratio shipped':>14} {'ratio ' + args.tag:>20} {'paired z vs shipped':>20}")
    for r in rows:
        print(f"{r.noise_level:6.3f} {r.mse_reference / r.mse_linear:14.4f} {r.mse_prior / r.mse_linear:20.4f} "
              f"{r.z_vs_reference:20.2f}")
    (RESULTS / f"quality_{args.tag}.json").write_text(json.dumps(out, indent=1) + "\n")


def cmd_mix(args) -> None:
    """Weight-space combination ``sum_i c_i theta_i`` of networks of the same architecture (coefficients sum to 1):
    the average of fine-tuning snapshots (less SGD noise than one iterate) or an interpolation with the shipped
    weights (``--weights shipped``)."""
    coefs = args.coef if args.coef else [1.0 / len(args.weights)] * len(args.weights)
    if len(coefs) != len(args.weights) or abs(sum(coefs) - 1) > 1e-9:
        raise ValueError(f"need one coefficient per weights file, summing to 1; got {coefs}")
    tensors = [load_file(str(MODEL / "weights.safetensors") if w == "shipped" else w) for w in args.weights]
    mixed = {k: sum(c * t[k].double() for c, t in zip(coefs, tensors)).to(tensors[0][k].dtype) for k in tensors[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(mixed, args.out, {"mix": json.dumps({"weights": args.weights, "coef": coefs})})
    print(f"wrote {args.out}: {' + '.join(f'{c:.3g} x {w}' for c, w in zip(coefs, args.weights))}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None,
                        help=f"results folder (default {RESULTS.relative_to(ROOT)}; the detector thresholds are "
                             "copied there from the default when it has none)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detector")
    p.add_argument("--num", type=int, default=4000)
    p = sub.add_parser("sample")
    p.add_argument("--setting", required=True, choices=SETTINGS)
    p.add_argument("--num", type=int, default=2000)
    p.add_argument("--weights", default=None)
    p.add_argument("--tag", default="shipped")
    p.add_argument("--shard", type=shard_spec, default=(0, 1), metavar="I/N",
                   help="only chunks with index %% N == I (run N side by side; a chunk's seed is its index)")
    p.add_argument("--device", default="cpu", type=check_device,
                   help="where the network runs (the noise is drawn on the CPU: the same draws on every device)")
    p = sub.add_parser("report")
    p.add_argument("--tag", default="shipped")
    p.add_argument("--num-data", type=int, default=2000)
    p.add_argument("--name", default=None, help="output <name>.md/.json (default: the tag)")
    p = sub.add_parser("sharpness")
    p.add_argument("--tags", nargs="+", required=True)
    p.add_argument("--setting", default="heunk25", choices=SETTINGS)
    p.add_argument("--num-data", type=int, default=2000)
    p = sub.add_parser("quality")
    p.add_argument("--weights", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--num-test", type=int, default=256)
    p = sub.add_parser("mix")
    p.add_argument("--weights", nargs="+", required=True, help="safetensors files, or 'shipped'")
    p.add_argument("--coef", nargs="*", type=float, default=None, help="default: the plain average")
    p.add_argument("--out", required=True)
    return parser


def main() -> None:
    global RESULTS, CACHE
    args = build_parser().parse_args()
    default = RESULTS
    if args.results is not None:
        RESULTS = Path(args.results).resolve()
        CACHE = RESULTS / "cache"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not (RESULTS / "detector.json").exists() and (default / "detector.json").exists():
        # through a file of this process's own, renamed into place: jobs started side by side on one folder
        tmp = RESULTS / f"detector.json.{os.getpid()}.tmp"
        shutil.copyfile(default / "detector.json", tmp)
        os.replace(tmp, RESULTS / "detector.json")
    {"detector": cmd_detector, "sample": cmd_sample, "report": cmd_report, "quality": cmd_quality,
     "sharpness": cmd_sharpness,
     "mix": cmd_mix}[args.command](args)


if __name__ == "__main__":
    main()
