"""``anatlearn finetune`` and ``anatlearn predict``: fine-tune an encoder on your labels (nested CV), and
apply a fine-tuned model to new subjects (docs/finetune.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from anatlearn import DEFAULT_WORKERS
from anatlearn.cli import app
from anatlearn.errors import ConfigError


def _lr_grid(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--lr-grid {text!r}: give learning rates separated by commas, e.g. 1e-4,1e-3") from None


def _label_source(target: str | None, task: str | None, tasks: str | None) -> str:
    """The column (``--target``) or the task of ``--tasks`` (``--task``) the labels come from."""
    if tasks is None:
        if task is not None:
            raise ConfigError(f"--task {task} names a task of a task set: give --tasks PRESET|FILE too, or "
                              f"--target COLUMN for a column of the participants table")
        if target is None:
            raise ConfigError("give the labels: --target COLUMN (a column of the participants table) or "
                              "--tasks PRESET|FILE --task NAME")
        return target
    if task is None and target is not None:  # the spelling of earlier releases
        typer.echo(f"anatlearn: warning: --target with --tasks is deprecated; use --task {target} (it will be "
                   f"removed in the next release)", err=True)
        return target
    if task is None or target is not None:
        raise ConfigError("with --tasks give --task NAME (one of its tasks), not --target")
    return task


@app.command("finetune")
def finetune_command(
    weights: str = typer.Option(..., "--weights", help="Checkpoint to start from, or 'random' (the same "
                                "architecture untrained: --model, --width)."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (OpenBHB layout or NIfTI + participants.tsv)."),
    target: Optional[str] = typer.Option(None, "--target", help="Label column of the participants table (or "
                                         "--tasks and --task)."),
    out: Path = typer.Option(..., "--out", help="Run directory (metrics, intervals, predictions, curves)."),
    participants: Optional[Path] = typer.Option(None, "--participants", help="Labels table (default: the dataset's "
                                                "participants.tsv)."),
    task: Optional[str] = typer.Option(None, "--task", help="The task of --tasks to fine-tune on (e.g. "
                                       "AD-like-vs-CN)."),
    problem: Optional[str] = typer.Option(None, "--problem", help="classification or regression of --target "
                                          "(default: inferred from the column)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="A preset or TOML task file of `evaluate tasks` "
                                        "(same subjects and folds); --task names one of its tasks."),
    folds: int = typer.Option(5, "--folds", help="Outer stratified folds (those of `evaluate tasks`, repeat 0)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds, head initialisation and data order."),
    model: str = typer.Option("resnet18", "--model", help="Architecture for --weights random (or a released "
                              "AnatCL checkpoint)."),
    width: float = typer.Option(1.0, "--width", help="Channel width for --weights random."),
    epochs: int = typer.Option(30, "--epochs", help="Most epochs per fit, warm-up included (early stopping)."),
    warmup_epochs: int = typer.Option(2, "--warmup-epochs", help="Epochs training the head only, encoder frozen."),
    patience: int = typer.Option(5, "--patience", help="Epochs without a better validation loss before stopping."),
    lr_grid: str = typer.Option("1e-4,1e-3", "--lr-grid", help="Head learning rates tried on the inner split."),
    layer_decay: float = typer.Option(0.7, "--layer-decay", help="Encoder stage d below the head learns at lr*decay^d."),
    batch_size: int = typer.Option(8, "--batch-size", help="Subjects per batch."),
    augment: Optional[list[str]] = typer.Option(None, "--augment", help="crop, cutout, flip, blur, noise "
                                                "(the views of pretrain); repeatable."),
    precision: str = typer.Option("auto", "--precision", help="auto (GPU: bf16/fp16; CPU: fp32), fp32, bf16, fp16."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda."),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Data-loading worker processes."),
    final: bool = typer.Option(False, "--final", help="Also train one model on every labelled subject "
                               "(OUT/final/model.pt) for `anatlearn predict`."),
    allow_grid_mismatch: bool = typer.Option(False, "--allow-grid-mismatch", help="Fine-tune on images on another "
                                             "grid than the encoder was trained on (refused by default); recorded."),
    stop_after_steps: Optional[int] = typer.Option(None, hidden=True),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run or other output already in --out "
                                   "whole (default: a run with the same options continues, anything else is refused)."),
) -> None:
    """Fine-tune an encoder end to end with a fresh head; nested cross-validation, resumable per fold."""
    from anatlearn.finetune import FinetuneConfig, finetune
    from anatlearn.io import check_output_path

    name = _label_source(target, task, tasks)
    check_output_path(out, "dir", "--out")
    cfg = FinetuneConfig(folds=folds, seed=seed, lr_grid=_lr_grid(lr_grid), warmup_epochs=warmup_epochs,
                         epochs=epochs, patience=patience, layer_decay=layer_decay, batch_size=batch_size,
                         augment=tuple(augment or ()), precision=precision, model=model, width=width)
    done = finetune(weights, data, out, target=name, participants=participants, kind=problem, tasks=tasks,
                    config=cfg, final=final, device=device, workers=workers, stop_after_steps=stop_after_steps,
                    overwrite=overwrite, allow_grid_mismatch=allow_grid_mismatch)
    if done:
        import json

        collapsed = json.loads((out / "results.json").read_text()).get("one_class_folds") or []
        if collapsed:
            typer.echo(f"note: in outer fold(s) {', '.join(map(str, collapsed))} the model predicted one class for "
                       f"every test subject (balanced accuracy at chance): it did not learn the task there; compare "
                       f"with the linear probe on the same folds (docs/finetune.md)", err=True)
        typer.echo(_results_table(out / "results.csv"))
        typer.echo(f"wrote {out}")
    else:
        typer.echo(f"stopped early; run the same command again to resume {out}", err=True)


def _results_table(path: Path) -> str:
    """results.csv as `evaluate` prints its results: ``mean [ci_low, ci_high]`` per task and metric."""
    import pandas as pd

    from anatlearn.evaluate.results import format_table

    table = pd.read_csv(path)
    if "method" not in table.columns:
        table.insert(0, "method", "finetune")
    if {"task", "metric", "mean", "ci_low", "ci_high"} <= set(table.columns):
        return format_table(table)
    return table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


@app.command("predict")
def predict_command(
    fitted: Path = typer.Option(..., "--fitted", help="A fine-tuned model (finetune --final: "
                               "OUT/final/model.pt), or a saved probe (evaluate tasks --save-probes: "
                               "OUT/probes/METHOD/TASK.json)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset directory of the new subjects (a fine-tuned "
                                        "model)."),
    features: Optional[str] = typer.Option(None, "--features", help="Feature table of the new subjects, "
                                           "[NAME=]PATH, embedded with the probe's encoder (a saved probe)."),
    out: Path = typer.Option(..., "--out", help="CSV: one row per participant_id."),
    participants: Optional[Path] = typer.Option(None, "--participants", help="Table checked for labels the model "
                                                "never saw (default: the dataset's participants.tsv)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Volumes per forward pass."),
    precision: str = typer.Option("auto", "--precision", help="auto (GPU: bf16/fp16; CPU: fp32), fp32, bf16, fp16."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda."),
    allow_grid_mismatch: bool = typer.Option(False, "--allow-grid-mismatch", help="Apply a fine-tuned model to "
                                             "images on another grid than it was trained on (refused by default)."),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Data-loading worker processes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Apply a fine-tuned model or a saved linear probe to new subjects: class probabilities or the predicted value."""
    from anatlearn.evaluate.saved_probes import is_probe
    from anatlearn.finetune import predict
    from anatlearn.finetune.predict import predict_with_probe
    from anatlearn.io import refuse_existing

    from anatlearn.cli.vocabulary import split_named

    model = fitted
    features = Path(split_named(features)[1]) if features is not None else None
    probe = is_probe(model)
    if probe and features is None:
        raise ConfigError(f"--fitted {model} is a saved linear probe: give the new subjects' --features (embedded "
                          f"with the same encoder), not --data")
    if not probe and data is None:
        raise ConfigError(f"--fitted {model} is a fine-tuned model: give the new subjects' --data"
                          + (" (--features is for saved probes)" if features is not None else ""))
    refuse_existing(out, "file", overwrite, "--out")
    if probe:
        table = predict_with_probe(model, features, out, participants=participants)
    else:
        table = predict(model, data, out, participants=participants, batch_size=batch_size, device=device,
                        workers=workers, precision=precision, allow_grid_mismatch=allow_grid_mismatch)
    typer.echo(f"wrote {out} ({len(table)} subjects)")
