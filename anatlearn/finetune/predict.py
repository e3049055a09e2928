"""Fine-tuned models on disk, and prediction for new subjects.

A fine-tuned checkpoint is an anatlearn checkpoint (``load_pretrained`` reads its encoder and head) with a
``finetune`` record: the task kind, the class names and which raw table values map to each class, the
target's standardisation, the input grid (shape, NIfTI affine), how images were read and the settings.
A linear probe saved by ``evaluate tasks --save-probes`` (:mod:`anatlearn.evaluate.saved_probes`) carries
the same label record and predicts from a feature table of the new subjects (:func:`predict_with_probe`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anatlearn.errors import CheckpointError, DataError
from anatlearn.finetune.labels import prediction_table
from anatlearn.io import atomic_write_text
from anatlearn.precision import resolve as resolve_precision
from anatlearn.provenance import provenance


def save_finetuned(path: Path, model, problem, target_stats: dict, winner: dict) -> None:
    from anatlearn.models import save_checkpoint

    record = {"kind": problem.labels.kind, "target": problem.record["target"], "task": problem.labels.name,
              "classes": problem.labels.classes, "label_spec": problem.labels.spec, "target_stats": target_stats,
              "input": problem.record["input"], "weights": problem.record["weights"],
              "settings": problem.cfg.to_dict(), "lr": winner["lr"], "epoch": winner["epoch"],
              "preprocessing": "none beyond the dataset's own (volumes are read as stored, as for pretraining)"}
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1,
                           "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                           "model_config": model.model_config, "finetune": record, "seed": problem.cfg.seed,
                           "input_fingerprint": problem.input_fingerprint,
                           "provenance": provenance(problem.cfg.seed, record)})


def load_finetuned(path):
    """(model in eval mode, its ``finetune`` record); a checkpoint without one is refused, naming the file."""
    from anatlearn.models import load_pretrained

    model = load_pretrained(path)
    record = model.checkpoint_meta.get("finetune")
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} is not a fine-tuned model (it has no 'finetune' record); write one with "
                              f"finetune(..., final=True), or give a probe of `evaluate tasks --save-probes`.")
    return model, record


def check_grid(dataset, record: dict, model_path, data, allow: bool = False) -> dict:
    """Refuse images on another grid than the model's (shape; the affine, where both have one): the one rule
    of :func:`anatlearn.data.lineage.check_grid`, unless ``allow``. Returns the check's record."""
    from anatlearn.data.lineage import check_grid as grid_rule, dataset_grid

    first = dataset.participants["participant_id"].iloc[0]
    image = getattr(dataset, "_paths", [data])[0]
    return grid_rule({**record["input"], "origin": f"model {model_path}"}, dataset_grid(dataset),
                     model=f"of {model_path}", data=f"images of {data} (e.g. {image}, subject {first})", allow=allow)


def check_labels(participants: pd.DataFrame, record: dict, source: str) -> None:
    """Where the table holds the model's target column, refuse values the model never learnt."""
    from anatlearn.finetune.labels import as_label

    spec = record.get("label_spec") or {}
    column = spec.get("column")
    if record["kind"] != "classification" or column not in participants.columns:
        return
    keep = pd.Series(True, index=participants.index)
    for col, allowed in spec.get("where", {}).items():
        if col in participants.columns:
            keep &= participants[col].map(as_label).isin([str(a) for a in allowed])
    known = {str(v) for values in spec["class_values"] for v in values}
    values = participants.loc[keep, column].map(as_label).dropna()
    unseen = sorted(set(values) - known)
    if unseen:
        who = values[values.isin(unseen)].index[0]
        raise DataError(f"{source}: column {column!r} holds label(s) {unseen} (e.g. subject {who}) that the model "
                        f"never saw; it knows {sorted(known)}")


def predict(model_path, data, out=None, *, participants=None, batch_size: int = 8, device: str = "auto",
            workers: int = 0, precision: str = "auto", allow_grid_mismatch: bool = False) -> pd.DataFrame:
    """Predictions of the fine-tuned model ``model_path`` for every subject of ``data``: one row per
    participant_id with the predicted class and class probabilities, or the predicted value. Written
    to ``out`` (CSV) if given. Images on another grid, and labels the model never saw (where the table has
    its target column), are refused before anything is written (images on another grid: unless
    ``allow_grid_mismatch``)."""
    from anatlearn.data import open_dataset
    from anatlearn.evaluate import read_participants
    from anatlearn.finetune.loop import LabelledVolumes, outputs
    from anatlearn.io import check_output_path

    if out is not None:
        check_output_path(out, "file", "out")
    model, record = load_finetuned(model_path)
    dataset = open_dataset(data, require_age=False)
    check_grid(dataset, record, model_path, data, allow_grid_mismatch)
    checked = _input_check(model, dataset, model_path)
    table = read_participants(participants if participants is not None else data)
    check_labels(table, record, table.attrs.get("source", str(data)))
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    amp_dtype, _ = resolve_precision(precision, dev)
    ids = [str(p).strip() for p in dataset.participants["participant_id"]]
    volumes = LabelledVolumes(dataset, np.arange(len(ids)), np.zeros(len(ids)), ids)
    raw = outputs(model.to(dev), volumes, range(len(ids)), batch_size, dev, amp_dtype, workers, role="predict")
    if record["kind"] == "classification":
        pred = torch.softmax(raw, 1).numpy()
    else:
        pred = raw.numpy() * record["target_stats"]["std"] + record["target_stats"]["mean"]
    result = prediction_table(ids, pred, record["kind"], record["classes"])
    result.attrs["input_check"] = checked
    if out is not None:
        atomic_write_text(out, result.to_csv(index=False))
    return result


def predict_with_probe(probe_path, features, out=None, *, participants=None) -> pd.DataFrame:
    """Predictions of the saved linear probe ``probe_path`` for every row of the feature table ``features``
    (a path or DataFrame): the same table as :func:`predict`. Features of another encoder than the probe's
    (weight hashes differ: :func:`anatlearn.data.lineage.check_same_encoder`), tables without the probe's columns,
    and labels the probe never saw (where ``participants`` holds its target column), are refused before
    anything is written."""
    from anatlearn.evaluate import read_participants
    from anatlearn.evaluate.saved_probes import apply_probe, load_probe
    from anatlearn.features import read_features, validate_features
    from anatlearn.io import check_output_path
    from anatlearn.data.lineage import check_same_encoder

    if out is not None:
        check_output_path(out, "file", "out")
    record = load_probe(probe_path)
    source = str(features) if not isinstance(features, pd.DataFrame) else "the feature table"
    table = validate_features(read_features(features) if not isinstance(features, pd.DataFrame) else features, source)
    check_same_encoder(record.get("encoder_identity"), table, f"probe {probe_path}", source)
    if participants is not None:
        labels = read_participants(participants)
        check_labels(labels, record, labels.attrs.get("source", str(participants)))
    result = prediction_table(list(table.index), apply_probe(record, table, source), record["kind"], record["classes"])
    if out is not None:
        atomic_write_text(out, result.to_csv(index=False))
    return result


def _input_check(model, dataset, model_path) -> dict:
    """The maps checked against the model's training maps (anatlearn.inputcheck): one line on stderr; the
    record (``input_check`` of the feature tables) is returned."""
    from anatlearn.inputcheck import reference_from_meta, run_check, summary, summary_line
    from anatlearn.progress import note

    ref = run_check(dataset, reference_from_meta(model.checkpoint_meta, str(model_path)))
    note(summary_line(ref, f"`anatlearn check --weights {model_path} --data ... --out check.tsv` for the reasons"))
    return summary(ref)
