"""``finetune``: nested cross-validation of an encoder fine-tuned end to end (docs/finetune.md).

    OUT/config.json                 settings, task, encoder source (a resumed run must match them)
    OUT/splits.json                 the outer folds: test participant ids per fold
    OUT/folds/fold-K/state.pt       the fit in progress (deleted once the fold is scored)
    OUT/folds/fold-K/result.json    a scored fold (a re-run skips it)
    OUT/folds.csv                   per-fold metrics (the tidy layout of ``evaluate tasks``' folds.csv)
    OUT/results.csv, results.json   mean and Nadeau-Bengio corrected 95 % interval over the outer folds
    OUT/predictions.csv             out-of-fold predictions, one row per subject
    OUT/curves.csv, curves.png      learning curves (training and validation loss per epoch)
    OUT/provenance.json
    OUT/final/model.pt, predictions.csv, curve.csv    with ``final=True``
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anatlearn.errors import ConfigError
from anatlearn.evaluate import score_predictions
from anatlearn.io import atomic_write_text
from anatlearn.precision import resolve as resolve_precision
from anatlearn.progress import note, progress

from anatlearn.finetune.config import FinetuneConfig
from anatlearn.finetune.labels import inner_split, outer_splits
from anatlearn.finetune.loop import FitContext, LabelledVolumes, StepBudget, fit, outputs
from anatlearn.finetune.setup import RANDOM, Problem, prepare, summarise, write_outputs

FINAL_KEY = -1


def finetune(weights: str, data, out, *, target: str, participants=None, kind: str | None = None,
             tasks=None, config: FinetuneConfig | None = None, final: bool = False, device: str = "auto",
             workers: int = 0, stop_after_steps: int | None = None, observer=None,
             overwrite: bool = False, allow_grid_mismatch: bool = False) -> bool:
    """Fine-tune ``weights`` (a checkpoint, or ``"random"``: ``config.model`` at ``config.width``, untrained)
    on the labels ``target`` of the subjects in ``data``, scored by nested cross-validation; writes ``out``.

    ``target`` is a column of ``participants`` (default: the dataset's participants.tsv), or, with ``tasks``
    (a preset name or TOML file of ``evaluate tasks``), the name of one of its tasks: then the subjects,
    labels and outer folds are exactly those of ``evaluate tasks``. ``observer(role, positions)`` sees every
    batch a loader yields (role train / validation / test); ``stop_after_steps`` stops after that many
    optimiser steps (a simulated kill). Returns True when every fold (and the final model) is done; a
    re-run resumes where it stopped. Images on another grid than the starting encoder was trained on are
    refused unless ``allow_grid_mismatch`` (recorded in provenance.json).
    """
    cfg = (config or FinetuneConfig()).validate()
    problem = prepare(weights, data, out, target=target, participants=participants, kind=kind, tasks=tasks, cfg=cfg,
                      overwrite=overwrite, allow_grid_mismatch=allow_grid_mismatch)
    problem.input_fingerprint = _input_check(weights, problem)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    amp_dtype, use_scaler = resolve_precision(cfg.precision, dev)
    budget = StepBudget(stop_after_steps)
    splits = outer_splits(problem.labels, cfg.folds, cfg.seed)
    atomic_write_text(problem.out / "splits.json", json.dumps(
        {"seed": cfg.seed, "folds": [[problem.labels.ids[i] for i in s.test] for s in splits]}, indent=1))
    common = dict(device=dev, amp_dtype=amp_dtype, use_scaler=use_scaler, workers=workers, observer=observer,
                  budget=budget)
    _say_reused(problem.out, [s.fold for s in splits])
    results = []
    for split in splits:
        path = problem.out / "folds" / f"fold-{split.fold}" / "result.json"
        if not path.exists():
            doc = _run_fold(problem, split, common)
            if doc is None:
                return False
            atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=True))
            (path.parent / "state.pt").unlink(missing_ok=True)
            note(f"fold {split.fold}: " + ", ".join(f"{k} {v:.3f}" for k, v in doc["metrics"].items())
                 + f" (lr {doc['lr']:g}, best epoch {doc['epoch']})")
        results.append(json.loads(path.read_text()))
    write_outputs(problem, results, summarise(problem, results))
    if final and not (problem.out / "final" / "model.pt").exists():
        return _run_final(problem, common)
    return True


def _say_reused(out: Path, folds: list[int]) -> None:
    """A re-run says which folds it keeps: "folds 1-3 of 5 already done in OUT; continuing at fold 4"."""
    done = [k for k in folds if (out / "folds" / f"fold-{k}" / "result.json").exists()]
    if not done:
        return
    names = f"fold {done[0]}" if len(done) == 1 else (f"folds {done[0]}-{done[-1]}" if done == list(
        range(done[0], done[-1] + 1)) else "folds " + ", ".join(map(str, done)))
    todo = [k for k in folds if k not in done]
    nxt = f"continuing at fold {todo[0]}" if todo else "only the summary (and --final) left to do"
    note(f"{names} of {len(folds)} already done in {out}; {nxt}")


def _context(problem: Problem, train_pos: np.ndarray, val_pos: np.ndarray, test_pos, key: int, common: dict):
    labels, cfg = problem.labels, problem.cfg
    y_train = labels.y[train_pos]
    class_weights, stats = None, {"mean": 0.0, "std": 1.0}
    if labels.kind == "classification" and cfg.class_balanced:
        counts = np.bincount(y_train.astype(int), minlength=len(labels.classes)).astype(float)
        # "balanced" weights n / (K n_k) (King & Zeng 2001): each class contributes equally to the loss
        class_weights = torch.tensor(len(y_train) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
        class_weights = class_weights.to(common["device"])
    elif labels.kind == "regression":
        stats = {"mean": float(y_train.mean()), "std": float(y_train.std() or 1.0)}
    guard = dict(rows=problem.rows, targets=labels.y, ids=labels.ids, seed=cfg.seed, forbidden=test_pos)
    return FitContext(cfg=cfg, kind=labels.kind, model_config=problem.model_config,
                      initial_state=problem.initial_state,
                      train_data=LabelledVolumes(problem.dataset, transform=problem.transform, **guard),
                      eval_data=LabelledVolumes(problem.dataset, **guard), train_pos=train_pos, val_pos=val_pos,
                      key=key, class_weights=class_weights, target_stats=stats, **common)


def _inner(problem: Problem, outer_train: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray]:
    tr, va = inner_split(problem.labels.y[outer_train], problem.labels.kind, problem.cfg.inner_folds,
                         problem.cfg.seed + max(key, 0) + (1000 if key == FINAL_KEY else 0), problem.labels.name)
    return outer_train[tr], outer_train[va]


def _fit(problem: Problem, ctx: FitContext, state_path: Path, what: str):
    total = problem.cfg.epochs * len(problem.cfg.lr_grid)
    with progress(f"fine-tuning {what}", total=total) as bar:
        ctx.on_epoch = bar.advance
        return fit(ctx, state_path)


def predictions_of(problem: Problem, ctx: FitContext, model, positions, role: str) -> np.ndarray:
    """Class probabilities (n, K) or predicted values (n,) of ``positions``."""
    out = outputs(model, LabelledVolumes(problem.dataset, problem.rows, problem.labels.y, problem.labels.ids),
                  positions, problem.cfg.batch_size, ctx.device, ctx.amp_dtype, ctx.workers, ctx.observer, role)
    if problem.labels.kind == "classification":
        return torch.softmax(out, 1).numpy()
    return out.numpy() * ctx.target_stats["std"] + ctx.target_stats["mean"]


def _trained_model(problem: Problem, ctx: FitContext, winner: dict):
    from anatlearn.models import build_model

    model = build_model(problem.model_config)
    model.load_state_dict(winner["weights"])
    return model.to(ctx.device)


def _run_fold(problem: Problem, split, common: dict) -> dict | None:
    """Fit on the outer-training part (inner split inside it), then score the test fold once."""
    train_pos, val_pos = _inner(problem, split.train, split.fold)
    ctx = _context(problem, train_pos, val_pos, split.test, split.fold, common)
    state = problem.out / "folds" / f"fold-{split.fold}" / "state.pt"
    winner = _fit(problem, ctx, state, f"fold {split.fold + 1} of {problem.cfg.folds}")
    if winner is None:
        return None
    pred = predictions_of(problem, ctx, _trained_model(problem, ctx, winner), split.test, "test")
    y = problem.labels.y[split.test]
    if problem.labels.kind == "classification":
        score = pred[:, 1] if pred.shape[1] == 2 else pred
        metrics = score_predictions("classification", y, pred.argmax(1), score if pred.shape[1] == 2 else None)
        if pred.shape[1] > 2:
            from sklearn.metrics import roc_auc_score

            metrics["roc_auc"] = float(roc_auc_score(y, pred, multi_class="ovr", labels=list(range(pred.shape[1]))))
    else:
        metrics = score_predictions("regression", y, pred)
    return {"fold": split.fold, "metrics": {k: float(v) for k, v in metrics.items()}, "lr": winner["lr"],
            "epoch": winner["epoch"], "val_loss": winner["val_loss"], "n_train": len(split.train),
            "n_test": len(split.test), "n_inner_train": len(train_pos), "n_validation": len(val_pos),
            "test_ids": [problem.labels.ids[i] for i in split.test], "predictions": np.asarray(pred).tolist(),
            "curve": winner["curve"]}


def _run_final(problem: Problem, common: dict) -> bool:
    """One model on every labelled subject (an inner split for early stopping and the learning rate)."""
    from anatlearn.finetune.predict import save_finetuned

    everyone = np.arange(len(problem.labels.ids))
    train_pos, val_pos = _inner(problem, everyone, FINAL_KEY)
    ctx = _context(problem, train_pos, val_pos, [], FINAL_KEY, common)
    final = problem.out / "final"
    winner = _fit(problem, ctx, final / "state.pt", "the final model")
    if winner is None:
        return False
    model = _trained_model(problem, ctx, winner)
    pred = predictions_of(problem, ctx, model, everyone, "final")
    atomic_write_text(final / "curve.csv", pd.DataFrame(winner["curve"]).to_csv(index=False))
    from anatlearn.finetune.labels import prediction_table

    atomic_write_text(final / "predictions.csv", prediction_table(problem.labels.ids, pred, problem.labels.kind,
                                                                  problem.labels.classes).to_csv(index=False))
    save_finetuned(final / "model.pt", model, problem, ctx.target_stats, winner)
    (final / "state.pt").unlink(missing_ok=True)
    note(f"final model: {final / 'model.pt'} (lr {winner['lr']:g}, best epoch {winner['epoch']})")
    return True


def read_run(out) -> dict:
    """A finished run's results.json."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{out} holds no finished fine-tuning run (no results.json)")
    return json.loads(path.read_text())


def _input_check(weights: str, problem: Problem) -> dict | None:
    """Check the maps against the encoder's training maps (anatlearn.inputcheck): one line, and
    OUT/input_check.tsv (participant_id, ok, reasons). An untrained encoder has nothing to check against."""
    from anatlearn.inputcheck import reference_for_weights, run_check, summary_line

    if str(weights) == RANDOM:
        return None
    ref = run_check(problem.dataset, reference_for_weights(weights, problem.cfg.model, problem.cfg.width))
    path = problem.out / "input_check.tsv"
    if ref.results is not None:
        table = ref.results.assign(ok=ref.results["ok"].map({True: "true", False: "false"}))
        atomic_write_text(path, table.to_csv(sep="\t", index=False))
    note(summary_line(ref, str(path)))
    return ref.fingerprint
