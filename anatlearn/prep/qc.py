"""QC figures and the QC page: three orthogonal slices of each prepared volume with the template's brain
outline drawn over it (matplotlib, Agg backend), listed with the metrics in ``OUT/qc.html``."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.io import atomic_path, atomic_write_text

# QC thresholds below which a prepared subject is ``flagged`` (docs/prep.md, "QC", gives the distributions
# on the real test heads, the phantoms and broken inputs that they separate)
FLAG_DICE_BRAIN = 0.95
FLAG_CORR_TEMPLATE = 0.53
FLAG_CORR_GM = 0.50


def flag_reasons(metrics: dict, config) -> list[str]:
    """Why a prepared subject is flagged (empty: it passes): its brain-mask Dice with the template, its T1w
    correlation with the template and (vbm) its GM map's correlation with the template's GM, each
    against ``config.flag_*``. A metric that is NaN flags too; one absent from ``metrics`` (a row written
    before it existed) is not checked."""
    checks = [("brain-mask Dice", "dice_brain", config.flag_dice_brain),
              ("T1w correlation with the template", "corr_template", config.flag_corr_template)]
    if config.target == "vbm":
        checks.append(("GM correlation with the template", "corr_gm", config.flag_corr_gm))
    out = []
    for name, key, threshold in checks:
        if key not in metrics:
            continue
        value = float("nan") if metrics[key] is None else float(metrics[key])
        if not value >= threshold:
            out.append(f"{name} {value:.3f} < {threshold:g}")
    return out


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
    records = qc.to_dict("records")
    for rec in records:
        fig = rec.get("figure") or ""
        cells = "".join(f"<td>{html.escape(_fmt(rec.get(c)))}</td>" for c in
                        ("participant_id", "status", "skull_strip", "dice_brain", "corr_template", "corr_gm",
                         "dice_tissue", "seconds", "error"))
        img = f'<img src="{html.escape(fig)}" width="540">' if fig and (out / fig).is_file() else ""
        rows.append(f"<tr class='{html.escape(str(rec.get('status')))}'>{cells}<td>{img}</td></tr>")
    listed = "".join(f"<li><b>sub-{html.escape(str(r['participant_id']))}</b> {html.escape(str(r['status']))}: "
                     f"{html.escape(str(r.get('error') or ''))}</li>" for r in records if r.get("status") != "ok")
    attention = (f"<h2>Needs a look ({sum(r.get('status') != 'ok' for r in records)})</h2><ul>{listed}</ul>"
                 "<p>Flagged subjects were prepared but are left out of participants.tsv; failed ones have no "
                 "output. Look at their figures below.</p>" if listed else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>anatlearn prep QC</title>
<style>body{{font-family:sans-serif;margin:1.5em}} td,th{{border-bottom:1px solid #ddd;padding:4px 8px;
vertical-align:top;font-size:13px}} tr.failed{{background:#fdd}} tr.flagged{{background:#fec}}
tr.ok td:first-child{{font-weight:bold}}</style>
</head><body><h1>anatlearn prep: quality control</h1><p>{html.escape(summary)}</p>{attention}
<p>Red: outline of the MNI152 template's brain mask on the target grid. A well-prepared subject fills the
outline; a shifted, rotated or mis-scaled brain, or one cut off at the edge, means the registration failed.
Dice brain: the subject's brain mask in MNI space against the template's; corr. T1w / GM: correlation of the
registered T1w / GM map with the template's inside its brain mask (docs/prep.md gives the thresholds).</p>
<table><tr><th>participant</th><th>status</th><th>skull stripping</th><th>Dice brain</th><th>corr. T1w</th>
<th>corr. GM</th><th>Dice tissue</th><th>seconds</th><th>error / flags</th><th>figure</th></tr>{''.join(rows)}
</table></body></html>
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
