"""``anatlearn demo``: the whole product on a generated cohort (see anatlearn.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-out"), help="Output directory (data, runs, results, report.html)."),
    quick: bool = typer.Option(False, help="A one-minute run of the same path (tiny cohort, one epoch)."),
    seed: int = typer.Option(0, help="Seed of the cohort and of every method."),
    epochs: int = typer.Option(None, help="Pretraining epochs per method (default 10, or 1 with --quick). "
                               "Pretraining time scales with it; 30 and 100 are the study's other budgets."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Generate a synthetic cohort, pretrain AnatCL and baselines, evaluate them and write a report."""
    import pandas as pd

    from anatlearn.demo import run_demo
    from anatlearn.demo.summary import console_summary
    from anatlearn.io import emptied_dir

    emptied_dir(out, overwrite, "--out")
    summary = run_demo(out, quick=quick, seed=seed, epochs=epochs)
    table = pd.read_csv(out / "results.csv")
    typer.echo(console_summary(summary, table))
