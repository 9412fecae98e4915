"""Matplotlib figures for the report. Each function takes numbers from the analysis and returns PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["coverage_figure", "sbc_figure", "tarp_figure", "examples_figure", "stratified_figure", "posterior_figure",
           "to_png"]


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def coverage_figure(samplers: dict) -> bytes:
    """Empirical vs nominal coverage per sampler with Clopper–Pearson bands."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    for label, s in samplers.items():
        cov = s.get("coverage")
        if not cov:
            continue
        lv = np.asarray(cov["levels"])
        line, = ax.plot(lv, cov["empirical"], marker="o", ms=3, label=label)
        ax.fill_between(lv, cov["cp_low"], cov["cp_high"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="nominal level of the credible interval", ylabel="empirical coverage (test split)",
           xlim=(0, 1), ylim=(0, 1), title="Per-pixel coverage")
    ax.legend(fontsize=7)
    return to_png(fig)


def stratified_figure(samplers: dict, level_label: str) -> bytes:
    """Coverage at one level, lesion vs background pixels, per sampler, with CP intervals."""
    labels = [k for k, s in samplers.items() if s.get("stratified")]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    width = 0.38
    for j, region in enumerate(["lesion", "background"]):
        vals, los, his = [], [], []
        for k in labels:
            r = samplers[k]["stratified"][region]
            vals.append(r["coverage"])
            los.append(r["coverage"] - r["cp_low"])
            his.append(r["cp_high"] - r["coverage"])
        x = np.arange(len(labels)) + (j - 0.5) * width
        ax.bar(x, vals, width, yerr=[los, his], capsize=3, label=region)
    ax.axhline(float(level_label), color="k", ls="--", lw=1)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="coverage", title=f"Coverage of {float(level_label):.0%} intervals by region")
    ax.legend(fontsize=7)
    return to_png(fig)


def sbc_figure(samplers: dict) -> bytes:
    """Histograms of SBC ranks (pixels) with the simultaneous band."""
    labels = [k for k, s in samplers.items() if s.get("sbc")]
    fig, axes = plt.subplots(1, max(len(labels), 1), figsize=(3 * max(len(labels), 1), 2.6), squeeze=False)
    for ax, k in zip(axes[0], labels):
        sbc = samplers[k]["sbc"]
        counts = np.asarray(sbc["hist"])
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="C0")
        ax.axhspan(sbc["band_low"], sbc["band_high"], color="gray", alpha=0.3)
        ax.set(title=f"{k}\nKS p={sbc['pvalue_ks']:.2g}", xticks=[])
    return to_png(fig)


def tarp_figure(samplers: dict) -> bytes:
    """TARP expected coverage probability vs credibility level."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for k, s in samplers.items():
        t = s.get("tarp")
        if not t:
            continue
        line, = ax.plot(t["alpha"], t["ecp"], label=k)
        if "band_low" in t:
            ax.fill_between(t["alpha"], t["band_low"], t["band_high"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="credibility level", ylabel="expected coverage", title="TARP (joint, whole images)")
    ax.legend(fontsize=7)
    return to_png(fig)


def examples_figure(example: dict) -> bytes:
    """Truth, measurement (min-norm view), and per sampler: mean, std, interval width, miscovered pixels."""
    rows = list(example["samplers"].items())
    fig, axes = plt.subplots(len(rows) + 1, 4, figsize=(8, 2.1 * (len(rows) + 1)), squeeze=False)
    head = [("truth", example["truth"], "gray"), ("measurement (A⁺y)", example["measurement"], "gray")]
    for ax, (title, img, cmap) in zip(axes[0], head):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    for ax in axes[0][len(head):]:
        ax.axis("off")
    for r, (label, s) in enumerate(rows, start=1):
        panels = [("mean", s["mean"], "gray", (0, 1)), ("std", s["std"], "magma", None),
                  ("90% width", s["width"], "viridis", None), ("miscovered", s["miss"], "Reds", (0, 1))]
        for ax, (title, img, cmap, lim) in zip(axes[r], panels):
            kw = {"vmin": lim[0], "vmax": lim[1]} if lim else {}
            ax.imshow(img, cmap=cmap, **kw)
            ax.set_title(f"{label}: {title}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return to_png(fig)


def posterior_figure(truth, measurement_view, posterior) -> bytes:
    """Truth, A^+ y, posterior mean, std, 90% interval width and up to four samples (channel 0)."""
    lo, hi = posterior.interval(0.9)
    samples = posterior.flat()[:4, 0]
    panels = [("truth", truth, "gray", (0, 1)), ("A⁺y", measurement_view, "gray", (0, 1)),
              ("mean", posterior.mean()[0], "gray", (0, 1)), ("std", posterior.std()[0], "magma", None),
              ("90% width", (hi - lo)[0], "viridis", None)]
    panels += [(f"sample {i}", s, "gray", (0, 1)) for i, s in enumerate(samples)]
    fig, axes = plt.subplots(1, len(panels), figsize=(2 * len(panels), 2.3))
    for ax, (title, img, cmap, lim) in zip(axes, panels):
        kw = {"vmin": lim[0], "vmax": lim[1]} if lim else {}
        ax.imshow(np.asarray(img.detach().cpu().real if hasattr(img, "detach") else img), cmap=cmap, **kw)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{posterior.sampler}: {posterior.num_samples} samples, NFE {posterior.nfe}, "
                 f"{posterior.wall_time:.1f} s", fontsize=9)
    return to_png(fig)
