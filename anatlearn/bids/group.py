"""The group level of the BIDS App: from the participant level's derivatives in ``OUT``,

* ``OUT/group/desc-<model>_features.tsv``: one row per prepared scan that passed QC (``ok``; flagged
  scans are left out, as ``anatlearn prep`` leaves them out of participants.tsv), per model;
* ``OUT/group/qc.tsv``: every scan's QC row (status, metrics, seed, error);
* ``OUT/group/qc.html``: one self-contained page, one mid-slice overlay per scan (the prepared map in gray,
  the template's brain outline in red), failed and flagged scans first."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anatlearn.bids.layout import bare_labels, read_description
from anatlearn.errors import DataError
from anatlearn.io import atomic_path, atomic_write_text

QC_COLUMNS = ("participant_id", "session_id", "scan", "status", "error", "skull_strip", "dice_brain",
              "corr_template", "corr_gm", "dice_tissue", "jacobian_mean", "native_gm_ml", "seed", "threads",
              "seconds", "source", "map")
ORDER = {"failed": 0, "flagged": 1, "ok": 2}


@dataclass
class GroupSummary:
    out: Path
    qc: pd.DataFrame
    tables: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # scans of the BIDS dataset with no derivatives yet
    bids_dir: Path | None = None

    def missing_note(self) -> str | None:
        """Which scans of the dataset the participant level has not written, and the command that does."""
        if not self.missing:
            return None
        labels = sorted({m.split("_")[0].removeprefix("sub-") for m in self.missing})
        shown = ", ".join(self.missing[:10]) + (f" ... and {len(self.missing) - 10} more" if len(self.missing) > 10
                                                else "")
        flags = " ".join(f"--participant-label {lab}" for lab in labels[:10]) + (" ..." if len(labels) > 10 else "")
        return (f"{len(self.missing)} scan(s) of {self.bids_dir} have no derivatives in {self.out} yet: {shown}; "
                f"run: anatlearn bids {self.bids_dir} {self.out} participant {flags} --weights WEIGHTS "
                f"(then the group level again)")

    def line(self) -> str:
        counts = self.qc["status"].value_counts().to_dict()
        tables = ", ".join(f"{p} ({n} rows)" for p, n in self.tables.items())
        return (f"{len(self.qc)} scan(s): {counts.get('ok', 0)} ok, {counts.get('flagged', 0)} flagged, "
                f"{counts.get('failed', 0)} failed; features: {tables or 'none'}; QC: {self.out / 'group' / 'qc.html'}")


def _qc_rows(out: Path, subjects: list[str] | None, sessions: list[str] | None) -> list[dict]:
    rows = []
    for path in sorted(out.glob("sub-*/**/anat/*_desc-prep_qc.json")):
        row = json.loads(path.read_text())
        row["qc_file"] = str(path.relative_to(out))
        if subjects and row.get("participant_id", "").removeprefix("sub-") not in subjects:
            continue
        if sessions and row.get("session_id", "").removeprefix("ses-") not in sessions:
            continue
        rows.append(row)
    return rows


def _feature_tables(out: Path, ok_rows: list[dict]) -> dict[str, pd.DataFrame]:
    """The per-scan feature files of the ``ok`` scans, concatenated per model label."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for row in ok_rows:
        qc = out / row["qc_file"]
        stem = qc.name[: -len("_desc-prep_qc.json")]
        for path in sorted(qc.parent.glob(f"{stem}_desc-*_features.tsv")):
            model = path.name[len(stem) + len("_desc-"): -len("_features.tsv")]
            parts.setdefault(model, []).append(pd.read_csv(path, sep="\t", keep_default_na=False, dtype={
                "participant_id": str, "session_id": str, "run": str}))
    return {m: pd.concat(p, ignore_index=True) for m, p in parts.items()}


def run_group(output_dir, participant_labels: list[str] | None = None,
              session_labels: list[str] | None = None, bids_dir=None) -> GroupSummary:
    """The group level (module docstring) over the scans the participant level wrote into ``output_dir``;
    with ``bids_dir``, the selected scans of the dataset that have no derivatives yet are listed
    (``GroupSummary.missing``)."""
    out = Path(output_dir)
    read_description(out)
    rows = _qc_rows(out, bare_labels(participant_labels, "sub-"), bare_labels(session_labels, "ses-"))
    if not rows:
        raise DataError(f"{out} holds no participant-level results (sub-*/[ses-*/]anat/*_desc-prep_qc.json) for "
                        f"the selected participants: run the participant level first")
    rows.sort(key=lambda r: (ORDER.get(r.get("status"), 0), r.get("scan", "")))
    qc = pd.DataFrame(rows)
    for col in QC_COLUMNS:
        if col not in qc:
            qc[col] = np.nan
    group = out / "group"
    group.mkdir(exist_ok=True)
    summary = GroupSummary(out, qc[list(QC_COLUMNS)], bids_dir=Path(bids_dir) if bids_dir is not None else None)
    if bids_dir is not None:
        from anatlearn.bids.layout import discover

        done = {r.get("scan") for r in rows}
        summary.missing = [s.prefix for s in discover(bids_dir, participant_labels, session_labels)
                           if s.prefix not in done]
    for model, table in _feature_tables(out, [r for r in rows if r.get("status") == "ok"]).items():
        path = group / f"desc-{model}_features.tsv"
        with atomic_path(path) as tmp:
            table.sort_values(["participant_id", "session_id", "run"]).to_csv(tmp, sep="\t", index=False,
                                                                             float_format="%.9g")
        summary.tables[path] = len(table)
    with atomic_path(group / "qc.tsv") as tmp:
        summary.qc.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    write_group_page(out, rows, summary.line())
    return summary


def mid_slice_png(map_path: Path, grid_config: dict) -> bytes:
    """A PNG of the axial slice through the centre of the template's brain mask: the prepared map in gray,
    the mask's outline in red."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import nibabel as nib

    from anatlearn.prep.pipeline import PrepConfig
    from anatlearn.prep.templates import template_on_grid

    volume = np.asarray(nib.load(map_path).dataobj, dtype=np.float32)
    mask = template_on_grid(PrepConfig.from_dict(grid_config).grid)["mask"]
    z = int(round(np.argwhere(mask > 0.5)[:, 2].mean())) if mask.any() else volume.shape[2] // 2
    vmax = float(np.percentile(volume[volume > 0], 99)) if (volume > 0).any() else 1.0
    fig, ax = plt.subplots(figsize=(2.6, 3.0), dpi=80)
    ax.imshow(volume[:, :, z].T, cmap="gray", origin="lower", vmin=0, vmax=vmax, interpolation="nearest")
    if mask[:, :, z].any():
        ax.contour(mask[:, :, z].T, levels=[0.5], colors="red", linewidths=0.8)
    ax.axis("off")
    fig.tight_layout(pad=0.1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_group_page(out: Path, rows: list[dict], summary: str) -> Path:
    """``OUT/group/qc.html`` (module docstring); the images are inlined, so the page can be mailed."""
    cards = []
    for r in rows:
        status = str(r.get("status"))
        map_path = out / r["map"] if r.get("map") else None
        if map_path is not None and map_path.is_file():
            data = base64.b64encode(mid_slice_png(map_path, r.get("prep_config", {}))).decode()
            img = f'<img alt="{html.escape(str(r.get("scan")))}" src="data:image/png;base64,{data}">'
        else:
            img = "<div class='none'>no prepared map</div>"
        metrics = " ".join(f"{k} {r[k]:.3f}" for k in ("dice_brain", "corr_template", "corr_gm", "jacobian_mean")
                           if isinstance(r.get(k), (int, float)))
        cards.append(f"<div class='card {html.escape(status)}'>{img}<p><b>{html.escape(str(r.get('scan')))}</b> "
                     f"{html.escape(status)}<br>{html.escape(metrics)}<br><i>{html.escape(str(r.get('error') or ''))}"
                     f"</i></p></div>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>anatlearn BIDS App: group QC</title>
<style>body{{font-family:sans-serif;margin:1.5em}} .card{{display:inline-block;width:230px;margin:6px;padding:6px;
vertical-align:top;border:2px solid #ccc;font-size:12px}} .failed{{border-color:#c00;background:#fdd}}
.flagged{{border-color:#e90;background:#fec}} .none{{height:200px;line-height:200px;text-align:center}}
img{{width:100%}}</style></head><body><h1>anatlearn BIDS App: group quality control</h1>
<p>{html.escape(summary)}</p><p>Axial slice through the centre of the MNI152 brain mask of each prepared map;
red: the template's brain outline. Failed (red) and flagged (orange) scans come first. A good map fills the
outline; docs/prep.md, "QC", gives the thresholds.</p>{''.join(cards)}</body></html>
"""
    path = out / "group" / "qc.html"
    atomic_write_text(path, page)
    return path
