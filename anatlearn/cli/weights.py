"""``anatlearn weights``: what each contrastive weighting asks the encoder for, before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from anatlearn.cli import app
from anatlearn.cli.flags import flags_named


@app.command("weights")
def weights_command(
    data: Path = typer.Option(..., "--data", help="Dataset directory with ages and FreeSurfer descriptors (the pretraining cohort)."),
    split: str = typer.Option("train", help="Split to read ('' for all subjects)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Subjects per batch, as in pretraining."),
    sigma: float = typer.Option(2.0, help="Age kernel width in years."),
    kernel: str = typer.Option("rbf", help="Age kernel: rbf, gaussian, cauchy."),
    atlas: str = typer.Option("desikan", help="desikan or destrieux."),
    batches: int = typer.Option(200, help="Random batches averaged over."),
    seed: int = typer.Option(0, help="Seed of the random batches."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the table here (TSV)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Own-view share and perplexity (effective number of positives) of each weighting's InfoNCE target,
    and how well it ranks subject pairs by age and (synthetic cohorts) by true anatomy; see
    anatlearn.losses.target_check and docs/losses.md."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import atomic_write_text, refuse_existing
    from anatlearn.losses.target_check import NEAR_UNIFORM, check_weights

    if batches < 1:
        raise ConfigError(f"--batches must be at least 1, got {batches}")
    if out is not None:
        refuse_existing(out, "file", overwrite, "--out")
    with flags_named({"batch_size": "--batch-size"}):
        df = check_weights(data, split, batch_size, sigma, kernel, atlas, batches, seed)
    typer.echo(df.drop(columns="near_uniform").to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    flat = df[df["near_uniform"] & df["weighting"].str.startswith("anat")]
    if len(flat):
        n = int(df["n_targets"].iloc[0])
        typer.echo(f"\nnear-uniform targets (perplexity > {NEAR_UNIFORM:g} x {n}): {', '.join(flat['weighting'])}. "
                   "Their term mostly asks every pair to be equally similar; a sharper map (weight_map kernel or "
                   "clamp) spreads less (whether that gives better features is measured in docs/study.md).")
    if out is not None:
        atomic_write_text(out, df.to_csv(sep="\t", index=False, float_format="%.6g"))
        typer.echo(f"wrote {out}")
