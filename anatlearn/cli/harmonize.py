"""``anatlearn harmonize``: ComBat harmonisation of a feature table across sites."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app
from anatlearn.cli.vocabulary import split_named


@app.command("harmonize")
def harmonize_command(
    features: str = typer.Option(..., "--features", help="Feature table to harmonise, [NAME=]PATH (.parquet/.csv)."),
    participants: Path = typer.Option(..., "--participants", help="Its participants table (site and covariate columns)."),
    out: Path = typer.Option(..., "--out", help="Output directory (features.parquet, combat_model.npz, harmonize.json)."),
    reference: Path = typer.Option(None, "--reference", help="Feature table to fit ComBat on (may be --features itself)."),
    reference_participants: Path = typer.Option(None, "--reference-participants", help="The reference's participants table."),
    fitted: Path = typer.Option(None, "--fitted", help="Re-apply a saved harmoniser (combat_model.npz) instead of fitting one."),
    covariate: list[str] = typer.Option(None, "--covariate", help="Column whose effect is preserved (e.g. age, sex, diagnosis); repeatable."),
    categorical: list[str] = typer.Option(None, "--categorical", help="Treat this numeric covariate as categorical; repeatable (text columns always are)."),
    site_column: str = typer.Option("site", "--site-column", help="The site (scanner/batch) column."),
    eb: bool = typer.Option(True, "--eb/--no-eb", help="Empirical-Bayes shrinkage of the site effects (ComBat's default)."),
    seed: int = typer.Option(0, help="Seed of the site-probe check's folds."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Fit ComBat on a reference (or load it) and harmonise a cohort of known sites; see docs/clinical.md."""
    from anatlearn.clinical.run import run_harmonize
    from anatlearn.io import new_output, refuse_existing

    refuse_existing(out, "dir", overwrite, "--out")
    covariates = list(covariate or [])
    cat = None
    if categorical:
        unknown = [c for c in categorical if c not in covariates]
        if unknown:
            from anatlearn.errors import ConfigError

            raise ConfigError(f"--categorical {unknown[0]!r} is not one of the --covariate columns")
        cat = list(categorical)
    with new_output(out, "dir", overwrite, "--out") as folder:
        summary = run_harmonize(folder, Path(split_named(features)[1]), participants, reference, reference_participants,
                                fitted, covariates, cat, site_column, eb, seed=seed)
    typer.echo(f"harmonised {summary['n_subjects']} subjects over sites {', '.join(summary['sites'])} "
               f"(preserving: {', '.join(summary['covariates']) or 'nothing'})")
    check = summary.get("site_check")
    if check:
        typer.echo(f"site classifier balanced accuracy (CV on this cohort): {check['before']:.3f} -> {check['after']:.3f} "
                   f"(chance {check['chance']:.3f})")
    ref = summary.get("reference_site_check")
    if ref:
        typer.echo(f"on the reference itself: {ref['before']:.3f} -> {ref['after']:.3f}")
    if summary.get("warning"):
        typer.echo(f"warning: {summary['warning']}", err=True)
    typer.echo(f"wrote {out}/features.parquet and harmonize.json")
