"""What a fine-tuning run is set up from (data, labels, starting model) and what it writes at the end."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anatlearn.errors import ConfigError, differences
from anatlearn.evaluate.stats import bounded_interval
from anatlearn.evaluate import corrected_interval, load_tasks, read_participants
from anatlearn.io import atomic_write_text, check_output_path
from anatlearn.provenance import provenance

from anatlearn.finetune.config import FinetuneConfig
from anatlearn.finetune.labels import Labels, align, labels_from_column, labels_from_task, outer_splits

RANDOM = "random"


@dataclass
class Problem:
    """A prepared run: the image dataset, labelled subjects (``rows``: their dataset rows), the model to
    start every fit from, and the run directory."""
    cfg: FinetuneConfig
    out: Path
    dataset: object
    labels: Labels
    rows: np.ndarray
    model_config: dict
    initial_state: dict
    transform: object
    record: dict  # config.json: what the run is
    inputs: dict = field(default_factory=dict)  # where its data came from (provenance, not identity)
    input_fingerprint: dict | None = None  # the encoder's training maps (anatlearn.inputcheck), kept by the final model


def input_grid(dataset) -> dict:
    """The image grid a model is trained on (shape, and the affine of NIfTI data) and how images are read."""
    affine = getattr(dataset, "affine", None)
    return {"shape": [int(s) for s in dataset.shape], "layout": type(dataset).__name__,
            "modality": getattr(dataset, "modality", None),
            "affine": None if affine is None else np.asarray(affine, dtype=float).round(6).tolist()}


def initial_model(weights: str, cfg: FinetuneConfig, n_out: int, net=None) -> tuple[dict, dict]:
    """(model_config, state) of the encoder of ``weights`` (or untrained, ``"random"``) with a fresh linear
    head of ``n_out`` outputs; the random draws are seeded by ``cfg.seed`` (an untrained encoder is the
    study's random-init encoder of that seed) and leave the global RNG as it was. ``net``: ``weights``
    already loaded."""
    from anatlearn.models import build_model, default_model_config, load_pretrained

    encoder_state = None
    arch, width, in_channels = cfg.model, cfg.width, 1
    if str(weights) != RANDOM:
        net = net if net is not None else load_pretrained(weights, default_model=cfg.model, default_width=cfg.width)
        arch, width = net.model_config["encoder"], net.model_config.get("width", 1.0)
        in_channels = net.model_config.get("in_channels", 1)
        encoder_state = net.encoder.state_dict()
    model_config = default_model_config(arch, width, in_channels, head="regression")
    model_config["head"]["out_features"] = int(n_out)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(model_config)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)
    return model_config, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _labels(participants, target: str, kind: str | None, tasks) -> Labels:
    if tasks is None:
        return labels_from_column(participants, target, kind)
    task = load_tasks(tasks, select=[target])[0]
    if kind is not None and kind != task.kind:
        raise ConfigError(f"task {target} is a {task.kind} task, but `kind` {kind!r} was asked for")
    return labels_from_task(task, participants)


def _starting_encoder(weights, cfg: FinetuneConfig, dataset, data, allow_grid_mismatch: bool):
    """(loaded model or None for "random", lineage record): the starting encoder's identity, and the grid rule
    (:func:`anatlearn.data.lineage.check_grid`) between its training grid and the images."""
    from anatlearn.data.lineage import check_grid, dataset_grid, encoder_identity, training_grid
    from anatlearn.models import load_pretrained

    if str(weights) == RANDOM:
        return None, {}
    net = load_pretrained(weights, default_model=cfg.model, default_width=cfg.width)
    grid = check_grid(training_grid(net, str(weights)), dataset_grid(dataset), model=str(weights),
                      data=f"data {data}", allow=allow_grid_mismatch)
    return net, {"encoder_identity": encoder_identity(net, str(weights)), "grid_check": grid}


def prepare(weights, data, out, *, target: str, participants, kind, tasks, cfg: FinetuneConfig,
            overwrite: bool = False, allow_grid_mismatch: bool = False) -> Problem:
    """Check every input before anything is written; a run directory is resumed only with the same run
    (``overwrite``: replaced whole by the new one)."""
    from anatlearn.data import open_dataset
    from anatlearn.data.transforms import build_augmentations

    out = check_output_path(out, "dir", "out")
    dataset = open_dataset(data, require_age=False)
    table = read_participants(participants if participants is not None else data)
    labels, rows = align(_labels(table, target, kind, tasks), list(dataset.participants["participant_id"]), str(data))
    n_out = len(labels.classes) if labels.kind == "classification" else 1
    net, lineage = _starting_encoder(weights, cfg, dataset, data, allow_grid_mismatch)
    model_config, state = initial_model(weights, cfg, n_out, net=net)
    record = {"config": cfg.to_dict(), "weights": _absolute(weights), "target": target, "tasks": None if tasks is None
              else _absolute(tasks), "kind": labels.kind, "classes": labels.classes, "label_spec": labels.spec,
              "subjects": labels.ids, "targets": labels.y.tolist(), "input": input_grid(dataset), "model_config": model_config,
              "encoder_sha256": (lineage.get("encoder_identity") or {}).get("sha256")}
    transform = build_augmentations(list(cfg.augment), dataset.shape)
    outer_splits(labels, cfg.folds, cfg.seed)  # too few subjects per class for the folds: refused before writing
    claim_run_dir(out, record, overwrite)
    inputs = {"cohort": str(data), "participants": str(participants) if participants is not None else None, **lineage}
    return Problem(cfg, out, dataset, labels, rows, model_config, state, transform, record, inputs)


def claim_run_dir(out: Path, record: dict, overwrite: bool) -> None:
    """Start the run in ``out`` (empty, or replaced whole with ``overwrite``), or continue the one there when
    its config.json is ``record``; a run with other settings, or a folder holding something else, is refused
    naming what differs (both values) and ``overwrite``."""
    from anatlearn.io import emptied_dir, holds_output

    path = out / "config.json"
    if path.exists() and not overwrite:
        old = json.loads(path.read_text())
        old.update({k: _absolute(old[k]) for k in ("weights", "tasks") if old.get(k)})  # older runs: as typed
        new = json.loads(json.dumps(record))
        if "encoder_sha256" not in old:  # a run written before encoder hashes were recorded resumes
            new.pop("encoder_sha256", None)
        diff = differences(old, new)
        if diff:
            raise ConfigError(f"out {out} holds a fine-tuning run with other settings ({'; '.join(diff[:4])}); "
                              f"give the same options to continue it, another `out`, or `overwrite` to replace it")
        return
    if holds_output(out) and not overwrite:
        raise ConfigError(f"out {out} is not empty and holds no fine-tuning run (no config.json); choose another "
                          f"`out`, or `overwrite` to replace it whole")
    emptied_dir(out, overwrite, "out")
    atomic_write_text(path, json.dumps(record, indent=1))


def _absolute(name) -> str:
    """A local file as its absolute path (a re-run from another directory is the same run); a name such as
    ``random``, a preset, a URL or ``hf-hub:ORG/NAME`` as given."""
    return os.path.abspath(name) if Path(name).exists() else str(name)


def summarise(problem: Problem, results: list[dict]) -> pd.DataFrame:
    """Per metric: mean over the outer folds, Nadeau-Bengio corrected 95 % interval (n_test/n_train of the
    folds: Nadeau & Bengio 2003), sd."""
    rows = []
    for metric in results[0]["metrics"]:
        scores = np.array([r["metrics"][metric] for r in results], dtype=float)
        n_train = float(np.mean([r["n_train"] for r in results]))
        n_test = float(np.mean([r["n_test"] for r in results]))
        mean, lo, hi = corrected_interval(scores, n_train, n_test)
        lo, hi, note = bounded_interval(metric, lo, hi)
        rows.append({"task": problem.labels.name, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "ci_note": note,
                     "sd": float(scores.std(ddof=1)), "n_folds": len(scores), "n": len(problem.labels.ids)})
    return pd.DataFrame(rows)


def fold_table(problem: Problem, results: list[dict], method: str = "finetune") -> pd.DataFrame:
    """Per-fold scores in the tidy layout of ``evaluate tasks``' folds.csv (repeat 0), plus lr and epoch."""
    return pd.DataFrame([{"method": method, "task": problem.labels.name, "repeat": 0, "fold": r["fold"],
                          "metric": m, "score": v, "n_train": r["n_train"], "n_test": r["n_test"], "lr": r["lr"],
                          "epoch": r["epoch"]} for r in results for m, v in r["metrics"].items()])


def one_class_folds(predictions: pd.DataFrame, kind: str) -> list[int]:
    """Outer folds whose model predicted one class for every test subject (its balanced accuracy is chance
    whatever the labels: the model did not learn the task; docs/finetune.md, "Results")."""
    if kind != "classification":
        return []
    return [int(f) for f, part in predictions.groupby("fold") if part["predicted"].nunique() == 1]


def write_outputs(problem: Problem, results: list[dict], table: pd.DataFrame) -> None:
    from anatlearn.finetune.labels import prediction_table

    out, labels = problem.out, problem.labels
    folds = fold_table(problem, results)
    preds = []
    for r in results:
        part = prediction_table(r["test_ids"], np.asarray(r["predictions"]), labels.kind, labels.classes)
        pos = [labels.ids.index(i) for i in r["test_ids"]]
        truth = labels.y[pos]
        part.insert(1, "fold", r["fold"])
        part.insert(2, "target", [labels.classes[int(t)] for t in truth] if labels.kind == "classification" else truth)
        preds.append(part)
    order = {i: k for k, i in enumerate(labels.ids)}
    predictions = pd.concat(preds).sort_values("participant_id", key=lambda s: s.map(order))
    curves = pd.DataFrame([row for r in results for row in r["curve"]])
    atomic_write_text(out / "folds.csv", folds.to_csv(index=False))
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    atomic_write_text(out / "predictions.csv", predictions.to_csv(index=False))
    atomic_write_text(out / "curves.csv", curves.to_csv(index=False))
    prov = provenance(problem.cfg.seed, {**problem.record, **problem.inputs})
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=1))
    doc = {"kind": "finetune", "task": labels.name, "target_kind": labels.kind, "classes": labels.classes,
           "weights": problem.record["weights"], "encoder_sha256": problem.record["encoder_sha256"],
           "table": table.to_dict("records"),
           "folds": folds.to_dict("records"), "one_class_folds": one_class_folds(predictions, labels.kind),
           "provenance": prov}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=1, allow_nan=True))
    _plot_curves(curves, out / "curves.png")


def _plot_curves(curves: pd.DataFrame, path: Path) -> None:
    """Validation loss per epoch, one line per (fold, learning rate); a convenience, not a result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from anatlearn.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4))
    for (fold, lr), g in curves.groupby(["fold", "lr"]):
        ax.plot(g["epoch"], g["val_loss"], label=f"fold {fold}, lr {lr:g}", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
