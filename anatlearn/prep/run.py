"""The ``anatlearn prep`` driver: inputs, validation, a parallel and resumable loop over subjects, outputs.

Output directory (the OpenBHB per-subject layout that :func:`anatlearn.data.open_dataset` reads)::

    OUT/participants.tsv                   the input table's columns, one row per prepared subject
    OUT/sub-<id>/sub-<id><suffix>.npy      float32 (1, X, Y, Z) on the target grid (the final output)
    OUT/sub-<id>/sub-<id><suffix>.nii.gz   the same volume with its MNI affine (``write_nifti``)
    OUT/sub-<id>/sub-<id>_qc.png           QC figure;  OUT/sub-<id>/sub-<id>_qc.json  its metrics
    OUT/logs/sub-<id>.log                  per-subject log (steps, timings, errors with traceback)
    OUT/qc.tsv, OUT/qc.html, OUT/prep.json QC table and page; configuration, seed and versions

Every file is written to a temporary name and renamed (:mod:`anatlearn.io`); the ``.npy`` is written last,
so a subject whose ``.npy`` exists is finished and is skipped by the next run. With ``shard`` (``--shard I/N``,
a job-array task) only that task's subjects are prepared and no shared file is written; ``merge_prep``
(``--merge``) writes the shared files afterwards (:mod:`anatlearn.prep.shards`). Subjects run in separate
processes (``spawn``) with one ITK thread each when ``jobs > 1``. A failing subject is recorded in
``qc.tsv`` and the others go on; if every subject fails, :class:`~anatlearn.errors.DataError` is raised.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from anatlearn.errors import AnatlearnError, ConfigError, DataError, differences
from anatlearn.io import atomic_path, atomic_write_text
from anatlearn.prep.pipeline import LEGACY_RESULT_FIELDS, PrepConfig, configure_threads
from anatlearn.prep.shards import SHARDS_DIR, Shard, missing_reason, read_records, write_record
from anatlearn.prep.templates import SUFFIXES
from anatlearn.prep.validate import Subject, load_image, subjects_from_bids, subjects_from_list

QC_COLUMNS = ("participant_id", "status", "error", "skull_strip", "outside_brain", "dice_brain", "corr_template",
              "corr_gm", "dice_tissue", "jacobian_mean", "native_gm_ml", "strip_seconds", "seconds", "source", "figure")
TEXT_COLUMNS = ("error", "skull_strip", "source", "figure")


def subject_files(out: Path, pid: str, target: str) -> dict[str, Path]:
    d = out / f"sub-{pid}"
    stem = f"sub-{pid}{SUFFIXES[target]}"
    return {"npy": d / f"{stem}.npy", "nii": d / f"{stem}.nii.gz", "png": d / f"sub-{pid}_qc.png",
            "json": d / f"sub-{pid}_qc.json", "log": out / "logs" / f"sub-{pid}.log"}


def _subject_logger(pid: str, path: Path) -> tuple[logging.Logger, logging.Handler]:
    path.parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"anatlearn.prep.sub-{pid}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return log, handler


def process_subject(pid: str, source: str, out: str, config: dict) -> dict:
    """Prepare one subject and write its outputs; never raises: failures are returned as a QC row."""
    import nibabel as nib

    from anatlearn.prep.pipeline import prepare_subject
    from anatlearn.prep.qc import flag_reasons, qc_figure
    from anatlearn.prep.templates import template_on_grid

    cfg, out = PrepConfig.from_dict(config), Path(out)
    files = subject_files(out, pid, cfg.target)
    log, handler = _subject_logger(pid, files["log"])
    row = {"participant_id": pid, "status": "failed", "error": "", "source": source, "seed": cfg.seed,
           "threads": int(os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", 0)) or (cfg.threads or 1)}
    t0 = time.perf_counter()
    try:
        log.info("preparing subject %s from %s, target %s, registration %s, seed %d", pid, source, cfg.target,
                 cfg.transform, cfg.seed)
        res = prepare_subject(load_image(source), cfg, log)
        row.update(dice_brain=res.dice_brain, dice_tissue=res.dice_tissue, corr_template=res.corr_template,
                   jacobian_mean=res.jacobian_mean, native_gm_ml=res.native_gm_ml, corr_gm=res.corr_gm,
                   skull_strip=res.skull_strip, outside_brain=res.outside_brain, strip_seconds=res.strip_seconds,
                   stage_seconds=res.stage_seconds)
        problems = []
        if not np.isfinite(res.volume).all():
            problems.append("the prepared volume has NaN/inf voxels")
        if not (res.corr_template >= cfg.min_correlation):
            problems.append(f"correlation with the template {res.corr_template:.3f} < {cfg.min_correlation}")
        if not (res.dice_brain >= cfg.min_dice):
            problems.append(f"brain-mask Dice {res.dice_brain:.3f} < {cfg.min_dice}")
        flags = [] if problems else flag_reasons(row, cfg)  # prepared, but QC says it needs a look
        grid = cfg.grid
        if cfg.qc_figures:
            outline = template_on_grid(grid)["mask"]
            shown = res.volume if cfg.target == "vbm" else res.warped_t1
            qc_figure(shown, outline, files["png"], f"sub-{pid}  {cfg.target}  corr {res.corr_template:.3f}  "
                      f"Dice {res.dice_brain:.3f}" + ("  FAILED QC" if problems else "  FLAGGED" if flags else ""))
            row["figure"] = os.path.relpath(files["png"], out)
        if problems:
            raise DataError("registration failed QC: " + "; ".join(problems))
        if cfg.write_nifti:
            with atomic_path(files["nii"]) as tmp:
                nib.save(nib.Nifti1Image(res.volume, grid.matrix), str(tmp) + ".nii.gz")
                os.replace(str(tmp) + ".nii.gz", tmp)
        row.update(status="flagged" if flags else "ok", error="QC flagged: " + "; ".join(flags) if flags else "",
                   seconds=round(time.perf_counter() - t0, 2))
        atomic_write_text(files["json"], json.dumps(_jsonable(row), indent=1))
        with atomic_path(files["npy"]) as tmp:  # last: its presence marks the subject finished
            with open(tmp, "wb") as fh:
                np.save(fh, res.volume[None].astype(np.float32))
        log.info("done in %.1f s: %s", row["seconds"], files["npy"])
    except Exception as exc:  # one subject's failure must not stop the others
        row["error"] = str(exc) if isinstance(exc, AnatlearnError) else f"{type(exc).__name__}: {exc}"
        row["seconds"] = round(time.perf_counter() - t0, 2)
        log.error("FAILED: %s\n%s", row["error"], traceback.format_exc())
    finally:
        log.removeHandler(handler)
        handler.close()
    return row


def _reflag(row: dict, config: PrepConfig) -> dict:
    """A finished subject's status under this run's --flag-* thresholds (they change no volume)."""
    from anatlearn.prep.qc import flag_reasons

    if row.get("status") in ("ok", "flagged"):
        flags = flag_reasons(row, config)
        row.update(status="flagged" if flags else "ok", error="QC flagged: " + "; ".join(flags) if flags else "")
    return row


def _jsonable(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}


def _init_worker(threads: int) -> None:
    configure_threads(threads)


@dataclass
class PrepSummary:
    out: Path
    qc: pd.DataFrame
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    n_missing: int = 0  # merge only: subjects that no shard task finished (counted in n_failed too)
    shard: Shard | None = None
    n_flagged: int = 0  # prepared but below a QC threshold (not in n_ok nor n_failed)

    def line(self) -> str:
        failed = f"{self.n_failed} failed" + (f" ({self.n_missing} missing)" if self.n_missing else "")
        if self.n_flagged:
            failed = f"{self.n_flagged} flagged by QC, {failed}"
        if self.shard is not None:
            return (f"shard {self.shard}: {self.n_ok} subject(s) prepared ({self.n_skipped} already done, skipped), "
                    f"{failed}; run `anatlearn prep --merge` with the same options once every task has finished")
        return (f"{self.n_ok} subject(s) prepared ({self.n_skipped} already done, skipped), {failed}; "
                f"QC: {self.out / 'qc.tsv'}, {self.out / 'qc.html'}")


def _option_changes(previous: dict, config: PrepConfig) -> str:
    """'key: OLD in the output, NEW now' for every result-changing option that differs ('' if none)."""
    old = PrepConfig.from_dict({**LEGACY_RESULT_FIELDS, **previous}).result_fields()
    return "; ".join(differences(old, config.result_fields(), "in the output"))


def _check_out(out: Path, config: PrepConfig, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"output path {out} exists and is not a directory")
    meta = out / "prep.json"
    if meta.is_file():
        try:
            previous = json.loads(meta.read_text())["config"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise DataError(f"cannot read {meta}: {exc}") from None
        changes = _option_changes(previous, config)
        if changes and not overwrite:
            raise ConfigError(f"{out} was prepared with other options ({changes}); "
                              f"use another --out, or --overwrite to redo every subject")
    for path, rec in read_records(out).items():  # the --shard tasks of this directory: the same options
        changes = _option_changes(rec.get("config", {}), config)
        if changes and not overwrite:
            raise ConfigError(f"{out} was prepared with other options by shard task {path} ({changes}); "
                              f"every task and the merge need the same options")
    if meta.is_file() or (out / SHARDS_DIR).is_dir():  # a prep output, or shard tasks' output (not merged yet)
        return
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"output directory {out} is not empty and holds no prep.json: not an anatlearn prep output")


def run_prep(out: str | os.PathLike, config: PrepConfig, bids: str | None = None, images: str | None = None,
             overwrite: bool = False, skip_invalid: bool = False, progress: bool = False,
             echo: Callable[[str], None] = print, shard: Shard | None = None) -> PrepSummary:
    """Prepare every subject of a BIDS directory or an image list into ``out`` (see the module docstring);
    with ``shard``, only that job-array task's share (see :mod:`anatlearn.prep.shards`)."""
    subjects, warnings = _subjects(bids, images)
    out = Path(out)
    _check_out(out, config, overwrite)
    mine = shard.select(subjects) if shard is not None else subjects
    rows: dict[str, dict] = {}
    pending: list[Subject] = []
    for s in mine:
        files = subject_files(out, s.participant_id, config.target)
        if not overwrite and files["npy"].is_file() and files["json"].is_file():
            rows[s.participant_id] = _reflag({**json.loads(files["json"].read_text()), "skipped": True}, config)
        else:
            pending.append(s)
    for s in pending:  # validate before writing anything: bad input is one clear error naming the file
        try:
            load_image(s.path)
        except DataError as exc:
            if not skip_invalid:
                raise DataError(f"subject {s.participant_id}: {exc}") from None
            rows[s.participant_id] = {"participant_id": s.participant_id, "status": "failed", "error": str(exc),
                                      "source": str(s.path)}
    pending = [s for s in pending if s.participant_id not in rows]
    if shard is not None:
        return _run_shard(out, config, shard, mine, pending, rows, progress, echo)
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    _write_provenance(out, config, bids, images, None)
    rows.update(prepare_pending(pending, out, config, progress))
    return _finish(out, config, subjects, rows, warnings, bids, images, echo)


def _subjects(bids, images) -> tuple[list[Subject], list[str]]:
    if (bids is None) == (images is None):
        raise ConfigError("give exactly one of --bids DIR or --images LIST")
    return subjects_from_bids(bids) if bids is not None else (subjects_from_list(images), [])


def _run_shard(out: Path, config: PrepConfig, shard: Shard, mine: list[Subject], pending: list[Subject],
               rows: dict[str, dict], progress: bool, echo) -> PrepSummary:
    """One job-array task: its subjects only; its QC rows go to its own record, no shared file is written."""
    ids = [s.participant_id for s in mine]
    for path, rec in read_records(out).items():  # tasks of another split could share subjects with this one
        count = str(rec.get("shard", "")).split("/")[-1]
        if count != str(shard.count):
            raise ConfigError(f"{out} holds shard task {rec.get('shard')} ({path}) of a split into {count}, not "
                              f"{shard.count}: "
                              f"two splits would prepare the same subjects at once; use the same N, or remove "
                              f"{out / SHARDS_DIR} once no task of the old split runs")
    (out / SHARDS_DIR).mkdir(parents=True, exist_ok=True)  # first: marks OUT as a sharded prep for other tasks
    (out / "logs").mkdir(exist_ok=True)
    write_record(out, shard, config.to_dict(), ids, None)
    rows.update(prepare_pending(pending, out, config, progress))
    ordered = [{k: v for k, v in rows[p].items() if k != "skipped"} for p in ids]
    write_record(out, shard, config.to_dict(), ids, [_jsonable(r) for r in ordered])
    ok = [r for r in ordered if r.get("status") == "ok"]
    flagged = [r for r in ordered if r.get("status") == "flagged"]  # prepared, but QC asks for a look
    skipped = sum(bool(rows[p].get("skipped")) for p in ids)
    summary = PrepSummary(out, pd.DataFrame(ordered), len(ok), len(ordered) - len(ok) - len(flagged), skipped,
                          shard=shard, n_flagged=len(flagged))
    for rec in ordered:
        if rec.get("status") != "ok":
            echo(f"{'flagged' if rec.get('status') == 'flagged' else 'failed'}: sub-{rec['participant_id']}: "
                 f"{rec.get('error', '')}")
    if ids and not ok and not flagged:
        raise DataError(f"shard {shard}: every subject failed ({len(ids)}); see {out / 'logs'}")
    return summary


def merge_prep(out: str | os.PathLike, config: PrepConfig, bids: str | None = None, images: str | None = None,
               echo: Callable[[str], None] = print) -> PrepSummary:
    """``--merge``: participants.tsv, qc.tsv, qc.html and prep.json of a sharded ``out`` from every finished
    subject and the task records; subjects that no task finished are listed as missing (an error at the end,
    after the files are written, so that a scheduler sees the merge as incomplete)."""
    subjects, warnings = _subjects(bids, images)
    out = Path(out)
    if not (out / SHARDS_DIR).is_dir():
        raise DataError(f"{out} holds no {SHARDS_DIR}/ directory: nothing to merge (run the --shard I/N tasks first)")
    _check_out(out, config, overwrite=False)
    records = read_records(out)
    recorded = {r["participant_id"]: r for rec in records.values() for r in rec.get("rows", [])}
    rows: dict[str, dict] = {}
    for s in subjects:
        pid = s.participant_id
        files = subject_files(out, pid, config.target)
        if files["npy"].is_file() and files["json"].is_file():
            rows[pid] = _reflag(json.loads(files["json"].read_text()), config)
        elif pid in recorded:
            rows[pid] = recorded[pid]
        else:
            rows[pid] = {"participant_id": pid, "status": "missing", "error": missing_reason(pid, records),
                         "source": str(s.path)}
    summary = _finish(out, config, subjects, rows, warnings, bids, images, echo)
    if summary.n_missing:
        first = [p for p, r in rows.items() if r["status"] == "missing"][:5]
        raise DataError(f"{summary.n_missing} subject(s) missing from the merge of {out} "
                        f"(first: {', '.join('sub-' + p for p in first)}); their tasks did not finish: re-run "
                        f"them with the same options, then --merge again (the tables written now list them)")
    return summary


def prepare_pending(pending: list[Subject], out: Path, config: PrepConfig, show_progress: bool,
                    on_done=None) -> dict[str, dict]:
    """Prepare ``pending`` into ``out`` (:func:`process_subject` each; ``config.jobs`` processes, each with
    ``config.threads`` ITK threads, default 1): their QC rows by participant id. ``on_done(row)`` is called
    as each subject finishes."""
    on_done = on_done or (lambda row: None)
    from anatlearn.progress import progress

    rows: dict[str, dict] = {}
    if not pending:
        return rows
    jobs = min(config.jobs, len(pending))
    threads = config.threads or 1
    args = [(s.participant_id, str(s.path), str(out), config.to_dict()) for s in pending]
    with progress(f"prep {config.target}", total=len(args), enabled=show_progress, eta=True,
                  transient=False) as bar:
        if jobs == 1:
            configure_threads(threads)
            for a in args:
                rows[a[0]] = process_subject(*a)
                on_done(rows[a[0]])
                bar.advance(1)
            return rows
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                    initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(process_subject, *a): a for a in args}
            for fut in cf.as_completed(futures):
                pid, source = futures[fut][:2]
                try:
                    rows[pid] = fut.result()
                except Exception as exc:  # a worker killed (out of memory, crash in ITK)
                    rows[pid] = {"participant_id": pid, "status": "failed", "source": source,
                                 "error": f"worker process died: {type(exc).__name__}: {exc}"}
                on_done(rows[pid])
                bar.advance(1)
    return rows


def _write_provenance(out: Path, config: PrepConfig, bids, images, counts: dict | None) -> None:
    from anatlearn.prep import ants_version
    from anatlearn.provenance import provenance

    meta = provenance(config.seed, config.to_dict())
    meta["versions"]["antspyx"] = ants_version()
    if config.skull_strip != "no":
        from anatlearn.prep.skullstrip import deepbet_version

        meta["versions"]["deepbet"] = deepbet_version()
    meta["inputs"] = {"bids": str(bids) if bids else None, "images": str(images) if images else None}
    meta["grid"] = {"shape": list(config.grid.shape), "affine": [list(r) for r in config.grid.affine]}
    meta["transform"] = config.transform
    if counts:
        meta["result"] = counts
    atomic_write_text(out / "prep.json", json.dumps(meta, indent=1))


def _finish(out: Path, config: PrepConfig, subjects: list[Subject], rows: dict[str, dict], warnings: list[str],
            bids, images, echo) -> PrepSummary:
    from anatlearn.prep.qc import write_qc_page

    order = [s.participant_id for s in subjects]
    qc = pd.DataFrame([rows[p] for p in order])
    skipped = qc.pop("skipped").fillna(False).astype(bool) if "skipped" in qc else pd.Series(False, index=qc.index)
    for col in QC_COLUMNS:
        if col not in qc:
            qc[col] = np.nan if col not in TEXT_COLUMNS else ""
    qc = qc[list(QC_COLUMNS)]
    for col in TEXT_COLUMNS:
        qc[col] = qc[col].fillna("").astype(str)
    qc["error"] = qc["error"].str.replace(r"\s+", " ", regex=True)
    with atomic_path(out / "qc.tsv") as tmp:
        qc.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    ok = qc["status"] == "ok"
    table = pd.DataFrame([s.row for s in subjects])[ok.to_numpy()]
    if "age" not in table.columns:
        warnings.append("the participants table has no 'age' column: anatlearn's training and evaluation need one "
                        f"(add it to {out / 'participants.tsv'})")
    with atomic_path(out / "participants.tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    flagged = qc["status"] == "flagged"  # prepared (files written) but left out of participants.tsv
    summary = PrepSummary(out, qc, int(ok.sum()), int((~ok & ~flagged).sum()), int((skipped & ok).sum()), warnings,
                          n_missing=int((qc["status"] == "missing").sum()), n_flagged=int(flagged.sum()))
    counts = {"ok": summary.n_ok, "failed": summary.n_failed, "skipped": summary.n_skipped}
    counts |= {k: n for k, n in (("missing", summary.n_missing), ("flagged", summary.n_flagged)) if n}
    _write_provenance(out, config, bids, images, counts)
    write_qc_page(out, qc, summary.line())
    for w in warnings:
        echo(f"warning: {w}")
    for rec in qc[~ok & ~flagged].to_dict("records"):
        echo(f"{'missing' if rec['status'] == 'missing' else 'failed'}: sub-{rec['participant_id']}: {rec['error']}")
    for rec in qc[flagged].to_dict("records"):  # last: what the user must look at (qc.html lists them too)
        echo(f"flagged: sub-{rec['participant_id']}: {rec['error']} (outputs written, not in participants.tsv; "
             f"see {rec['figure'] or out / 'qc.html'})")
    if summary.n_ok == 0 and summary.n_flagged == 0:
        first = qc.iloc[0]
        raise DataError(f"every subject failed ({len(qc)}); first: sub-{first['participant_id']}: {first['error']} "
                        f"(see {out / 'qc.tsv'} and {out / 'logs'})")
    return summary
