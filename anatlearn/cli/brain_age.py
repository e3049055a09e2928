"""``anatlearn brain-age``: predicted age, brain-age gap and bias-corrected gap from frozen features."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app
from anatlearn.cli.vocabulary import split_named


@app.command("brain-age")
def brain_age_command(
    features: str = typer.Option(..., "--features", help="Feature table of the cohort to score, [NAME=]PATH (.parquet/.csv)."),
    participants: Path = typer.Option(..., "--participants", help="The cohort's participants table (age; optional group column)."),
    out: Path = typer.Option(..., "--out", help="Output directory (brain_age.tsv, model, plots, brain_age.json)."),
    reference: Path = typer.Option(None, "--reference", help="Feature table of the healthy reference to fit the age model on."),
    reference_participants: Path = typer.Option(None, "--reference-participants", help="The reference's participants table (ages)."),
    reference_where: list[str] = typer.Option(None, "--reference-where", help="Keep reference subjects with COLUMN=VALUE[,VALUE] (e.g. diagnosis=CN); repeatable."),
    fitted: Path = typer.Option(None, "--fitted", help="Re-apply a saved model (brain_age_model.npz) instead of fitting one."),
    age_column: str = typer.Option("age", "--age-column", help="Chronological age column (years)."),
    group_column: str = typer.Option(None, "--group-column", help="Group column (e.g. diagnosis): compare every group with --control."),
    control: str = typer.Option("CN", "--control", help="The control group's value in --group-column."),
    correction: str = typer.Option("cole", "--correction", help="Bias correction: cole ((pred - b) / a; de Lange & Cole 2020) or beheshti (gap residual on age; Beheshti et al. 2019)."),
    folds: int = typer.Option(5, "--folds", help="Folds of the reference's cross-validated predictions."),
    seed: int = typer.Option(0, help="Seed of the folds."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Fit a ridge brain-age model on a healthy reference (or load one) and score a cohort; see docs/clinical.md."""
    from anatlearn.clinical.run import run_brain_age
    from anatlearn.io import new_output, refuse_existing

    refuse_existing(out, "dir", overwrite, "--out")
    with new_output(out, "dir", overwrite, "--out") as folder:
        summary = run_brain_age(folder, Path(split_named(features)[1]), participants, reference, reference_participants, fitted, reference_where,
                                age_column, group_column, control, correction, folds, seed)
    ref = summary["reference"]
    if summary.get("uninformative"):  # first line: group tests below are read under this heading
        typer.echo(f"UNINFORMATIVE MODEL: {summary['uninformative']}")
    typer.echo(f"reference: {ref['n_reference']} subjects, CV MAE {ref['mae_reference_cv']:.2f} y, r(gap, age) "
               f"{ref['r_gap_age_reference']:+.3f} -> corrected {ref['r_corrected_gap_age_reference']:+.3f} ({ref['correction']})")
    if "warning" in summary:
        typer.echo(f"warning: {summary['warning']}", err=True)
    typer.echo(f"cohort: {summary['n_cohort']} subjects, MAE {summary['cohort_mae']:.2f} y")
    for row in summary.get("group_comparison", []):
        if row["measure"] == "corrected_gap":
            typer.echo(f"  {row['group']} vs {row['control']}: corrected gap {row['mean_group']:+.2f} vs "
                       f"{row['mean_control']:+.2f} y, Hedges' g {row['hedges_g']:+.2f} "
                       f"[{row['g_ci_low']:+.2f}, {row['g_ci_high']:+.2f}], Welch t p = {row['p']:.3g}")
    typer.echo(f"wrote {out}/brain_age.tsv and brain_age.json")
