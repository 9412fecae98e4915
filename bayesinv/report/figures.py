"""Matplotlib figures for the report. Each function takes numbers from the analysis and returns PNG bytes.

Nothing here computes a diagnostic: the inputs are the dictionaries of ``analysis.json`` and the maps of
``analysis.safetensors`` (see :mod:`bayesinv.studies.analysis` and :mod:`bayesinv.studies.audit`).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["coverage_figure", "coverage_maps_figure", "stratified_figure", "sbc_figure", "tarp_figure",
           "examples_figure", "pvalue_figure", "lesion_figure", "false_lesion_figure", "posterior_figure", "to_png"]


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int, per_row: int = 4, size: float = 2.3, layout: str | None = None):
    rows = max(1, -(-n // per_row))
    cols = max(1, min(n, per_row))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False, layout=layout)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def coverage_figure(samplers: dict) -> bytes:
    """Empirical vs nominal coverage per sampler with Clopper–Pearson bands."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    for label, s in samplers.items():
        cov = s.get("coverage")
        if not cov:
            continue
        lv = np.asarray(cov["levels"])
        style = ":" if s.get("point_estimate") else "-"
        suffix = " (conformal)" if s.get("point_estimate") else ""
        line, = ax.plot(lv, cov["empirical"], style, marker="o", ms=3, label=label + suffix)
        ax.fill_between(lv, cov["cp_low"], cov["cp_high"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="nominal level of the credible interval", ylabel="empirical coverage (test split)",
           xlim=(0, 1), ylim=(0, 1), title="Per-pixel coverage")
    ax.legend(fontsize=7)
    return to_png(fig)


def coverage_maps_figure(maps: dict, level: float) -> bytes:
    """Per-pixel coverage over test cases of the main-level intervals, one panel per sampler.

    Constrained layout gives every colour bar (and its tick labels) room of its own, so that no label
    overlaps the next panel (checked in ``tests/report/test_figures.py``).
    """
    fig, axes = _grid(len(maps), size=2.6, layout="constrained")
    for ax, (label, m) in zip(axes, maps.items()):
        im = ax.imshow(m, cmap="RdBu", vmin=max(0.0, 2 * level - 1), vmax=1.0)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.ax.tick_params(labelsize=7)
        bar.set_label("coverage", fontsize=7)
    return to_png(fig)


def stratified_figure(samplers: dict, level: float) -> bytes:
    """Coverage at one level by region (lesion, edges, background), per sampler, with CP intervals."""
    labels = [k for k, s in samplers.items() if s.get("stratified")]
    regions = [r for r in ("lesion", "edges", "background") if any(r in samplers[k]["stratified"] for k in labels)]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    width = 0.8 / max(len(regions), 1)
    for j, region in enumerate(regions):
        vals, los, his = [], [], []
        for k in labels:
            r = samplers[k]["stratified"].get(region, {"coverage": np.nan, "cp_low": np.nan, "cp_high": np.nan})
            vals.append(r["coverage"])
            los.append(r["coverage"] - r["cp_low"])
            his.append(r["cp_high"] - r["coverage"])
        x = np.arange(len(labels)) + (j - (len(regions) - 1) / 2) * width
        ax.bar(x, vals, width, yerr=[los, his], capsize=3, label=region)
    ax.axhline(level, color="k", ls="--", lw=1)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="coverage", title=f"Coverage of {level:.0%} intervals by region")
    ax.legend(fontsize=7)
    return to_png(fig)


def sbc_figure(samplers: dict) -> bytes:
    """Histograms of SBC ranks (pixels) with the simultaneous band, and the summaries' KS p-values."""
    labels = [k for k, s in samplers.items() if s.get("sbc")]
    fig, axes = plt.subplots(1, max(len(labels), 1), figsize=(3.4 * max(len(labels), 1), 2.8), squeeze=False)
    for ax, k in zip(axes[0], labels):
        sbc = samplers[k]["sbc"]
        counts = np.asarray(sbc["hist"])
        x = np.arange(len(counts))
        ax.bar(x, counts, width=1.0, color="C0")
        ax.fill_between(np.r_[x - 0.5, x[-1] + 0.5], np.r_[sbc["band_low"], sbc["band_low"][-1]],
                        np.r_[sbc["band_high"], sbc["band_high"][-1]], step="post", color="gray", alpha=0.35)
        short = {"mean_intensity": "mean", "random_projection": "proj.", "contrast": "contrast"}
        summ = ", ".join(f"{short.get(n, n)} {v['pvalue_ks']:.2g}" for n, v in sbc.get("summaries", {}).items())
        ax.set_title(f"{k}: pixels KS p={sbc['pvalue_ks']:.2g}\n{summ}", fontsize=7)
        ax.set_xticks([])
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
        ax.fill_between(t["alpha"], t["band_low"], t["band_high"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="credibility level", ylabel="expected coverage", title="TARP (joint, whole images)")
    ax.legend(fontsize=7)
    return to_png(fig)


def examples_figure(example: dict) -> bytes:
    """Truth, measurement (A⁺y), and per sampler: mean, std, interval width, miscovered pixels (+ null-space
    error and z-map when the audit ran)."""
    rows = list(example["samplers"].items())
    extra = [k for k in ("null", "z") if any(k in s for _, s in rows)]
    cols = 4 + len(extra)
    fig, axes = plt.subplots(len(rows) + 1, cols, figsize=(2 * cols, 2.1 * (len(rows) + 1)), squeeze=False)
    head = [("truth", example["truth"]), (example.get("measurement_title", "measurement A⁺y"), example["measurement"])]
    for ax, (title, img) in zip(axes[0], head):
        ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    for ax in axes[0][len(head):]:
        ax.axis("off")
    for r, (label, s) in enumerate(rows, start=1):
        panels = [("mean", "mean", "gray", (0, 1)), ("std", "std", "magma", None), ("width", "width", "viridis", None),
                  ("miscovered", "miss", "Reds", (0, 1)), ("|null-space error|", "null", "magma", None),
                  ("z-map", "z", "RdBu", (-4, 4))]
        panels = [p for p in panels if p[1] in ("mean", "std", "width", "miss") or p[1] in extra]
        for ax, (title, key, cmap, lim) in zip(axes[r], panels):
            if key not in s:
                ax.axis("off")
                continue
            kw = {"vmin": lim[0], "vmax": lim[1]} if lim else {}
            ax.imshow(s[key], cmap=cmap, **kw)
            ax.set_title(f"{label}: {title}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return to_png(fig)


def pvalue_figure(hallucination: dict) -> bytes:
    """Histograms of the chi-squared data-consistency p-values per sampler (flat if calibrated)."""
    fig, axes = _grid(len(hallucination), size=2.6)
    for ax, (label, h) in zip(axes, hallucination.items()):
        counts = np.asarray(h["chi2"]["pvalue_hist"], dtype=float)
        edges = np.linspace(0, 1, len(counts) + 1)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C1")
        ax.axhline(counts.sum() / len(counts), color="k", ls="--", lw=1)
        ax.set_title(f"{label}: rejected {100 * h['chi2']['rejected']:.1f}%", fontsize=8)
        ax.set_xlabel("p-value", fontsize=7)
    return to_png(fig)


def lesion_figure(hallucination: dict) -> bytes:
    """ROC curves of P(lesion | y) and its reliability diagram, per sampler."""
    fig, (roc, rel) = plt.subplots(1, 2, figsize=(8, 3.8), layout="constrained")
    roc.plot([0, 1], [0, 1], "k--", lw=1)
    rel.plot([0, 1], [0, 1], "k--", lw=1)
    for label, h in hallucination.items():
        les = h.get("lesion")
        if not les:
            continue
        line, = roc.plot(les["roc_fpr"], les["roc_tpr"], drawstyle="steps-post",
                         label=f"{label} (AUC {les['auc']:.2f})")
        r = les["reliability"]
        keep = [i for i, c in enumerate(r["counts"]) if c > 0]
        rel.plot([r["bin_centres"][i] for i in keep], [r["observed"][i] for i in keep], "o-", color=line.get_color(),
                 label=f"{label} (ECE {les['ece']:.2f})")
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="Lesion detection from P(lesion|y)",
            xlim=(0, 1), ylim=(0, 1.02))
    rel.set(xlabel="predicted P(lesion | y)", ylabel="observed lesion frequency", xlim=(0, 1), ylim=(0, 1),
            title="Reliability of P(lesion | y)")
    roc.legend(fontsize=7)
    rel.legend(fontsize=7)
    return to_png(fig)


def false_lesion_figure(hallucination: dict) -> bytes:
    """False- and missed-lesion rates per sampler with Clopper–Pearson intervals."""
    labels = [k for k, h in hallucination.items() if h.get("lesion")]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for j, (key, name) in enumerate((("false_lesion", "false lesions"), ("missed_lesion", "missed lesions"))):
        vals = np.array([hallucination[k]["lesion"][f"{key}_rate"] for k in labels])
        cps = np.array([hallucination[k]["lesion"][f"{key}_cp"] for k in labels]).reshape(-1, 2)
        x = np.arange(len(labels)) + (j - 0.5) * 0.38
        ax.bar(x, vals, 0.38, yerr=[vals - cps[:, 0], cps[:, 1] - vals], capsize=3, label=name)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="rate", title="Lesion errors (decision P(lesion|y) > 1/2)")
    ax.legend(fontsize=7)
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
