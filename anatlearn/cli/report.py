"""``anatlearn report``: one self-contained HTML page from runs, evaluation results and feature tables."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("report")
def report_command(
    inputs: list[Path] = typer.Argument(None, help="Pretraining runs (metrics.csv), results directories "
                                        "(results.json) and fine-tuning runs (compared on their shared folds with "
                                        "the probes of a tasks evaluation given)."),
    out: Path = typer.Option(..., "--out", help="Output HTML file."),
    features: list[str] = typer.Option(None, "--features", help="Feature table for a 2-D map, NAME=PATH or PATH (repeatable)."),
    participants: Path = typer.Option(None, "--participants", help="Participants table colouring the maps (age, site, diagnosis)."),
    title: str = typer.Option("anatlearn report", help="Page title."),
    seed: int = typer.Option(0, help="Seed of t-SNE/UMAP and of the subject subsample of large maps."),
    note: str = typer.Option("", help="A sentence appended to the verdict (e.g. how many seeds are behind it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Write a single HTML page: verdict, headline table and key comparisons first, then anatomy recovery,
    per-task bars, OpenBHB figures, loss curves, embedding maps, tables."""
    from anatlearn.evaluate import read_participants
    from anatlearn.io import refuse_existing
    from anatlearn.report import build_report
    from anatlearn.report.names import read_feature_args

    refuse_existing(out, "file", overwrite, "--out")
    tables = read_feature_args(features) if features else None
    labels = read_participants(participants) if participants else None
    path = build_report(inputs or [], out, features=tables, participants=labels, title=title, seed=seed,
                        note=note)
    typer.echo(f"wrote {path}")
