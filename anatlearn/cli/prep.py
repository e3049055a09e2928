"""``anatlearn prep``: bring T1w images (BIDS or a list) into the released weights' input space."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from anatlearn.cli import app


@app.command("prep")
def prep_command(
    out: Path = typer.Option(..., "--out", help="Output directory (OpenBHB per-subject layout, qc.tsv, qc.html)."),
    bids: Optional[Path] = typer.Option(None, "--bids", help="BIDS directory: participants.tsv + sub-*/[ses-*/]anat/*_T1w.nii[.gz]."),
    images: Optional[Path] = typer.Option(None, "--images", help="CSV/TSV list: participant_id, path (+ columns carried over)."),
    target: str = typer.Option("vbm", "--target", help="vbm (modulated GM, 121x145x121, 1.5 mm) or quasiraw (T1w, 182x218x182, 1 mm)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Subjects prepared in parallel (processes; one ITK thread each)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ITK threads per subject (default: all cores if --jobs 1, else 1)."),
    registration: str = typer.Option("auto", "--registration", help="auto (affine for quasiraw, affine+SyN for vbm), syn, affine, rigid, none."),
    template_resolution: float = typer.Option(1.0, "--template-resolution", help="Voxel size (mm) of the MNI152 template used for registration; 2 makes SyN ~7x faster (docs/prep.md)."),
    target_voxel_mm: Optional[float] = typer.Option(None, "--target-voxel-mm", help="Coarser output grid over the same box (testing only; the weights need the default)."),
    n4: bool = typer.Option(True, "--n4/--no-n4", help="N4 bias-field correction."),
    syn_iterations: str = typer.Option("40,20,0", "--syn-iterations", help="SyN iterations per level (coarse to fine)."),
    atropos_iterations: int = typer.Option(5, "--atropos-iterations", help="Atropos EM iterations."),
    modulation: str = typer.Option("full", "--modulation", help="Jacobian modulation of GM: full (affine x SyN), nonlinear, none."),
    min_correlation: float = typer.Option(0.5, "--min-correlation", help="QC gate: a subject whose correlation with the template is lower is reported as failed."),
    nifti: bool = typer.Option(True, "--nifti/--no-nifti", help="Also write each volume as NIfTI with its MNI affine."),
    seed: int = typer.Option(0, "--seed", help="Random seed of ANTs' metric sampling."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every subject, even finished ones (and accept changed options)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Record invalid input images as failed in qc.tsv instead of stopping."),
) -> None:
    """Prepare T1w images (N4, registration to MNI152, segmentation, modulation); see docs/prep.md."""
    from anatlearn.errors import ConfigError
    from anatlearn.prep import require_ants
    from anatlearn.prep.pipeline import PrepConfig
    from anatlearn.prep.run import run_prep

    try:
        iters = tuple(int(v) for v in syn_iterations.split(","))
    except ValueError:
        raise ConfigError(f"--syn-iterations must be integers separated by commas, got {syn_iterations!r}") from None
    config = PrepConfig(target=target, n4=n4, registration=registration, template_resolution=template_resolution,
                        target_voxel_mm=target_voxel_mm, syn_iterations=iters, atropos_iterations=atropos_iterations,
                        modulation=modulation, min_correlation=min_correlation, write_nifti=nifti, jobs=jobs,
                        threads=threads, seed=seed)
    require_ants()
    summary = run_prep(out, config, bids=str(bids) if bids else None, images=str(images) if images else None,
                       overwrite=overwrite, skip_invalid=skip_invalid, progress=sys.stderr.isatty(),
                       echo=lambda s: typer.echo(s, err=True))
    typer.echo(summary.line())
