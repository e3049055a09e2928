"""QC figures and the QC page: three orthogonal slices of each prepared volume with the template's brain
outline drawn over it (matplotlib, Agg backend), listed with the metrics in ``OUT/qc.html``."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.io import atomic_path, atomic_write_text


def qc_figure(volume: np.ndarray, outline: np.ndarray, path: Path, title: str) -> None:
    """Write a PNG: sagittal, coronal and axial slices through the centre of the template mask, the
    prepared ``volume`` in gray and the template brain ``outline`` (0/1 mask) as a red contour."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    centre = [int(round(c)) for c in np.argwhere(outline > 0.5).mean(axis=0)] if outline.any() else \
        [n // 2 for n in volume.shape]
    vmax = float(np.percentile(volume[volume > 0], 99)) if (volume > 0).any() else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=80)
    for ax, axis, name in zip(axes, range(3), ("sagittal", "coronal", "axial")):
        sl = [slice(None)] * 3
        sl[axis] = centre[axis]
        img, mask = volume[tuple(sl)].T, outline[tuple(sl)].T
        ax.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=vmax, interpolation="nearest")
        if mask.any() and not mask.all():
            ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_qc_page(out: Path, qc: pd.DataFrame, summary: str) -> Path:
    """``OUT/qc.html``: the summary, the QC table and every subject's figure (relative links)."""
    rows = []
    for rec in qc.to_dict("records"):
        fig = rec.get("figure") or ""
        cells = "".join(f"<td>{html.escape(_fmt(rec.get(c)))}</td>" for c in
                        ("participant_id", "status", "dice_brain", "dice_tissue", "corr_template", "seconds", "error"))
        img = f'<img src="{html.escape(fig)}" width="540">' if fig and (out / fig).is_file() else ""
        rows.append(f"<tr class='{html.escape(str(rec.get('status')))}'>{cells}<td>{img}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>anatlearn prep QC</title>
<style>body{{font-family:sans-serif;margin:1.5em}} td,th{{border-bottom:1px solid #ddd;padding:4px 8px;
vertical-align:top;font-size:13px}} tr.failed{{background:#fdd}} tr.ok td:first-child{{font-weight:bold}}</style>
</head><body><h1>anatlearn prep: quality control</h1><p>{html.escape(summary)}</p>
<p>Red: outline of the MNI152 template's brain mask on the target grid. A well-prepared subject fills the
outline; a shifted, rotated or mis-scaled brain, or one cut off at the edge, means the registration failed.</p>
<table><tr><th>participant</th><th>status</th><th>Dice brain</th><th>Dice tissue</th><th>corr. template</th>
<th>seconds</th><th>error</th><th>figure</th></tr>{''.join(rows)}</table></body></html>
"""
    path = out / "qc.html"
    atomic_write_text(path, page)
    return path


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def relative(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)
