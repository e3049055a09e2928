"""``anatlearn synth``: generate a synthetic cohort with known ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from anatlearn.cli import app


@app.command("synth")
def synth_command(
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (OpenBHB per-subject layout; required)."),
    old_out: Optional[Path] = typer.Argument(None, hidden=True),  # `synth OUT`, the spelling of earlier releases
    subjects: int = typer.Option(200, "--subjects", "-n", help="Number of subjects."),
    shape: tuple[int, int, int] = typer.Option((61, 73, 61), metavar="X Y Z", help="Grid X Y Z (same field of view as OpenBHB's 121x145x121)."),
    seed: int = typer.Option(0, help="Seed of the world (template regions, loadings, sites) and the subjects."),
    sites: int = typer.Option(4, help="Number of acquisition sites."),
    held_out_sites: int = typer.Option(1, help="Sites whose subjects form the external_test split."),
    disease: list[str] = typer.Option([], "--disease", help="Make a downstream cohort with this disease (AD-like, SCZ-like); repeatable."),
    noise_seed: int = typer.Option(0, help="Re-draw only scan/measurement noise (test-retest re-acquisition)."),
    nifti: bool = typer.Option(False, help="Also write the cohort as NIfTI + FreeSurfer aparc.stats under OUT/bids."),
    overwrite: bool = typer.Option(False, help="Replace a non-empty output directory."),
    world: str = typer.Option("v2", "--world", help="Generative model: v2 (full-rank anatomy, disease sizes as "
                              "Cohen's d; default) or v1 (the original world, reproduced bit-for-bit)."),
) -> None:
    """Generate a synthetic cohort (images, ROI tables, participants, ground truth); see docs/synthetic.md."""
    from anatlearn.synthetic import generate_cohort
    from anatlearn.io import refuse_existing

    out = _output(out, old_out)
    refuse_existing(out, "dir", overwrite, "--out")
    path = generate_cohort(out, subjects, shape, seed, sites, held_out_sites, tuple(disease), noise_seed, nifti, overwrite,
                           world=world)
    typer.echo(f"wrote {subjects} subjects to {path}")


def _output(out: Path | None, old_out: Path | None) -> Path:
    """--out, or the positional OUT of earlier releases (with a warning)."""
    from anatlearn.errors import ConfigError

    if old_out is not None:
        if out is not None:
            raise ConfigError(f"give the output directory once: --out {out} (not also {old_out})")
        typer.echo(f"anatlearn: warning: `anatlearn synth OUT` is deprecated; use --out {old_out} (it will be "
                   f"removed in the next release)", err=True)
        return old_out
    if out is None:
        raise ConfigError("give the output directory: --out DIR")
    return out
