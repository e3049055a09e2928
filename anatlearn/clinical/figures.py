"""Figures of the clinical outputs (PNG bytes): brain age vs chronological age, gap by group, region maps."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def brain_age_scatter(reference: pd.DataFrame, cohort: pd.DataFrame | None, groups: pd.Series | None,
                      title: str = "brain age") -> bytes:
    """Predicted vs chronological age: the reference's cross-validated predictions (grey) and the cohort's
    (by group), with the identity line and the reference's fitted bias line pred = a age + b."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
    for ax, column, label in ((axes[0], "predicted_age", "predicted age (uncorrected)"),
                              (axes[1], "corrected_predicted_age", "bias-corrected predicted age")):
        ax.scatter(reference["age"], reference[column], s=8, c="0.6", alpha=0.6, label="reference (CV)")
        if cohort is not None and len(cohort):
            keys = groups.loc[cohort.index].astype(str) if groups is not None else pd.Series("cohort", cohort.index)
            for g in sorted(keys.unique()):
                sel = keys == g
                ax.scatter(cohort.loc[sel, "age"], cohort.loc[sel, column], s=12, alpha=0.8, label=g)
        ages = pd.concat([reference["age"], cohort["age"]] if cohort is not None else [reference["age"]])
        lo, hi = float(ages.min()), float(ages.max())
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        if column == "predicted_age":
            a, b = np.polyfit(reference["age"], reference["predicted_age"], 1)
            ax.plot([lo, hi], [a * lo + b, a * hi + b], color="C3", lw=1, ls="--", label=f"bias: {a:.2f} age + {b:.1f}")
        ax.set_xlabel("chronological age (years)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _png(fig)


def gap_by_group(table: pd.DataFrame, groups: pd.Series, column: str = "corrected_gap",
                 title: str = "brain-age gap by group") -> bytes:
    """Box plot and points of the (corrected) gap per group."""
    keys = groups.loc[table.index].astype(str)
    names = sorted(keys.unique())
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(names), 3.8))
    data = [table.loc[keys == g, column].to_numpy() for g in names]
    ax.boxplot(data, tick_labels=names, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=8, alpha=0.6)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(column.replace("_", " ") + " (years)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def region_map_figure(region_img, background_img, title: str) -> bytes:
    """nilearn axial mosaic of the region-importance map over the cohort's mean image."""
    from nilearn import plotting

    data = np.asarray(region_img.dataobj)
    vmax = float(data.max()) if data.max() > 0 else 1.0
    fig = plt.figure(figsize=(10, 2.6))
    display = plotting.plot_stat_map(region_img, bg_img=background_img, display_mode="z", cut_coords=7,
                                     threshold=1e-12, vmax=vmax, cmap="hot", colorbar=True, title=title,
                                     figure=fig, black_bg=False, draw_cross=False, annotate=True)
    png = _png(fig)
    display.close()
    return png
