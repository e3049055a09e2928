"""The participant level of the BIDS App: each selected T1w scan is prepared (``anatlearn prep``, with its
QC gate) in the work directory, then embedded by a frozen encoder, and its derivatives are written under
``OUT/sub-<label>/[ses-<label>/]anat/`` (names: :func:`anatlearn.bids.layout.derivative_names`).

A scan's QC JSON is written last, so a scan whose QC JSON says ``ok`` or ``flagged`` and whose files exist
is finished: the next run skips it (``overwrite`` redoes it); a failed scan is retried. The work directory
keeps each prepared volume under a folder named after the options that change it, so a run stopped after
prep and before embedding resumes without preparing again."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from anatlearn.bids.layout import Scan, derivative_names, discover, write_description
from anatlearn.errors import ConfigError
from anatlearn.io import atomic_path, atomic_write_text
from anatlearn.prep.pipeline import PrepConfig

DONE = ("ok", "flagged")


@dataclass
class ParticipantSummary:
    """What one participant-level run did, scan by scan (``status``: ok, flagged, failed, skipped)."""

    out: Path
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [p for p, s in self.status.items() if s == "failed"]

    def line(self) -> str:
        counts = {k: sum(v == k for v in self.status.values()) for k in ("ok", "flagged", "skipped", "failed")}
        return (f"{counts['ok']} scan(s) prepared and embedded, {counts['flagged']} flagged by QC, "
                f"{counts['skipped']} already done (skipped), {counts['failed']} failed; derivatives in {self.out}")


def model_label(encoder, label: str | None = None) -> str:
    """The ``desc-`` label of the features: ``label``, or the encoder's architecture (alphanumeric)."""
    name = label or str((getattr(encoder.model, "model_config", {}) or {}).get("encoder", "model"))
    clean = "".join(ch for ch in name if ch.isalnum())
    if not clean:
        raise ConfigError(f"model label {name!r} has no letters or digits (a BIDS label is alphanumeric)")
    return clean


def _finished(out: Path, names: dict[str, Path]) -> bool:
    qc = out / names["qc"]
    if not qc.is_file():
        return False
    try:
        status = json.loads(qc.read_text()).get("status")
    except json.JSONDecodeError:
        return False
    return status in DONE and all((out / names[k]).is_file() for k in ("map", "features"))


def _work_folder(work: Path, config: PrepConfig) -> Path:
    """The prep output folder for these options (a change of any result-changing option starts afresh)."""
    key = json.dumps(config.result_fields(), sort_keys=True)
    return work / f"prep-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _pid(scan: Scan) -> str:
    """The scan's id in prep's work folder, which adds the ``sub-`` itself (sub-01_ses-a -> 01_ses-a)."""
    return scan.prefix.removeprefix("sub-")


def _stages(row: dict) -> str:
    """``sub-01: skull strip 0.0 s, bias correction 1.2 s, registration 5.3 s, segmentation 2.0 s; ok``."""
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in (row.get("stage_seconds") or {}).items())
    status = row.get("status", "failed") + (f" ({row['error']})" if row.get("error") else "")
    return f"sub-{row['participant_id']}: {stages or 'prep'}; {status} in {row.get('seconds', 0):.1f} s"


def _prepare(scans: list[Scan], prep_out: Path, config: PrepConfig, show_progress: bool,
             echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Prep rows by scan prefix; scans already prepared in ``prep_out`` (an earlier, interrupted run) are
    read back instead of prepared again. Each scan's stages and their times are echoed as it finishes."""
    from anatlearn.prep.run import prepare_pending, subject_files
    from anatlearn.prep.validate import Subject

    rows, pending = {}, []
    for scan in scans:
        files = subject_files(prep_out, _pid(scan), config.target)
        if files["npy"].is_file() and files["json"].is_file():
            rows[scan.prefix] = json.loads(files["json"].read_text())
        else:
            pending.append(Subject(_pid(scan), scan.path))
    (prep_out / "logs").mkdir(parents=True, exist_ok=True)
    done = prepare_pending(pending, prep_out, config, show_progress, on_done=lambda row: echo(_stages(row)))
    rows.update({f"sub-{pid}": row for pid, row in done.items()})
    return rows


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _write_features(table: pd.DataFrame, scan: Scan, names: dict[str, Path], out: Path, metadata: dict) -> None:
    row = table.loc[[scan.prefix]].copy()
    row.insert(0, "participant_id", f"sub-{scan.subject}")
    row.insert(1, "session_id", f"ses-{scan.session}" if scan.session else "n/a")
    row.insert(2, "run", scan.run or "n/a")
    with atomic_path(out / names["features"]) as tmp:
        row.to_csv(tmp, sep="\t", index=False, float_format="%.9g")  # 9 digits: float32 round-trips exactly
    atomic_write_text(out / names["features_json"], json.dumps(metadata, indent=1, default=str))


def _check_grid(encoder, weights, config: PrepConfig, allow: bool) -> None:
    from anatlearn.data.lineage import GRID, IDENTITY, check_grid

    have = {"shape": list(config.grid.shape), "affine": [list(r) for r in config.grid.affine]}
    encoder.metadata[GRID] = check_grid(encoder.metadata[IDENTITY]["training_grid"], have, model=str(weights),
                                        data=f"the prep target grid ({config.target})", allow=allow)


def run_participant(bids_dir, output_dir, weights, participant_labels: list[str] | None = None,
                    session_labels: list[str] | None = None, work_dir=None, overwrite: bool = False,
                    config: PrepConfig | None = None, label: str | None = None, device: str = "cpu",
                    command_line: str = "", show_progress: bool = False,
                    echo: Callable[[str], None] = print, allow_grid_mismatch: bool = False) -> ParticipantSummary:
    """The participant level (module docstring): prep then embed every selected scan of ``bids_dir``
    with the encoder of ``weights`` (anything :func:`anatlearn.models.load_pretrained` reads); ``label``
    names the features' ``desc-`` (default: the architecture). A prep target grid other than the one the
    encoder was trained on is refused before any scan is prepared, unless ``allow_grid_mismatch``
    (:func:`anatlearn.data.lineage.check_grid`; every features JSON records the outcome)."""
    from anatlearn.embed import AnatEncoder

    config = config or PrepConfig()
    if not config.write_nifti:
        raise ConfigError("the BIDS App writes each prepared map as NIfTI: config.write_nifti must be True")
    out = Path(output_dir)
    scans = discover(bids_dir, participant_labels, session_labels)
    encoder = AnatEncoder(weights, device=device, progress=show_progress)  # bad weights fail before any write
    _check_grid(encoder, weights, config, allow_grid_mismatch)
    desc = model_label(encoder, label)
    voxel_mm = config.grid.voxel_volume ** (1 / 3)
    names = {s.prefix: derivative_names(s, config.target, voxel_mm, desc) for s in scans}
    write_description(out, command_line)
    summary = ParticipantSummary(out)
    todo = []
    for scan in scans:
        if not overwrite and _finished(out, names[scan.prefix]):
            summary.status[scan.prefix] = "skipped"
        else:
            todo.append(scan)
    if not todo:
        return summary
    with tempfile.TemporaryDirectory(prefix="anatlearn-bids-") as tmp:
        prep_out = _work_folder(Path(work_dir) if work_dir else Path(tmp), config)
        rows = _prepare(todo, prep_out, config, show_progress, echo)
        _embed_and_write(todo, rows, prep_out, out, names, encoder, config, summary, echo)
    for prefix in summary.failed:
        echo(f"failed: {prefix}: {summary.errors[prefix]}")
    return summary


def _embed_and_write(scans: list[Scan], rows: dict[str, dict], prep_out: Path, out: Path, names: dict,
                     encoder, config: PrepConfig, summary: ParticipantSummary, echo=print) -> None:
    """Embed the prepared scans in one pass, then write each scan's derivatives (the QC JSON last; every path
    it names exists, relative to ``out``)."""
    import time

    from anatlearn.prep.run import subject_files

    prepared = [s for s in scans if rows[s.prefix].get("status") in DONE]
    volumes = {s.prefix: np.load(subject_files(prep_out, _pid(s), config.target)["npy"])[0] for s in prepared}
    t0 = time.perf_counter()
    table = encoder.transform(volumes) if volumes else None
    checks = _input_checks(volumes, encoder)
    if volumes:
        echo(f"embedding: {len(volumes)} scan(s) in {time.perf_counter() - t0:.1f} s")
    for scan in scans:
        files, n = subject_files(prep_out, _pid(scan), config.target), names[scan.prefix]
        row = dict(rows[scan.prefix])
        row.update(participant_id=f"sub-{scan.subject}", session_id=f"ses-{scan.session}" if scan.session else "n/a",
                   scan=scan.prefix, source=str(scan.path), prep_config=config.result_fields())
        row["log"] = row["figure"] = None
        if files["log"].is_file():
            _copy(files["log"], out / n["log"])
            row["log"] = str(n["log"])
        if files["png"].is_file():
            _copy(files["png"], out / n["figure"])
            row["figure"] = str(n["figure"])
        if scan in prepared:
            _copy(files["nii"], out / n["map"])
            row["input_check"] = checks[scan.prefix]
            _write_features(table, scan, n, out, {**encoder.metadata, "input_check": checks[scan.prefix]})
            row["features"] = str(n["features"])
        row["map"] = str(n["map"]) if scan in prepared else ""
        (out / n["qc"]).parent.mkdir(parents=True, exist_ok=True)
        row = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        atomic_write_text(out / n["qc"], json.dumps(row, indent=1, default=str))
        summary.status[scan.prefix] = row.get("status", "failed")
        if summary.status[scan.prefix] == "failed":
            summary.errors[scan.prefix] = row.get("error", "")


def _input_checks(volumes: dict, encoder) -> dict[str, dict]:
    """Each prepared map checked against the encoder's training maps (anatlearn.inputcheck): into its QC
    JSON and its features' metadata."""
    from anatlearn.inputcheck import check_maps, reference_from_meta

    if not volumes:
        return {}
    return check_maps(volumes, reference_from_meta(getattr(encoder.model, "checkpoint_meta", {}), encoder.source))
