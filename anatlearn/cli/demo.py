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
    from anatlearn.evaluate import format_table
    from anatlearn.outputs import emptied_dir

    emptied_dir(out, overwrite, "--out")
    summary = run_demo(out, quick=quick, seed=seed, epochs=epochs)
    table = pd.read_csv(out / "results.csv")
    typer.echo(format_table(table))
    typer.echo("\nAnatCL minus baselines, balanced-accuracy points (positive: AnatCL better):")
    for task, row in summary["claims"].items():
        if task not in ("paired_tests", "brain_age_mae_external"):
            typer.echo(f"  {task}: " + ", ".join(f"{k.split(' (')[0]} {v:+.1f}" for k, v in row.items()))
    typer.echo(f"brain-age MAE on the external site: {summary['claims']['brain_age_mae_external']}")
    typer.echo(f"\ntimings (s): {summary['timings_s']}")
    typer.echo(f"report: {summary['report']}")
