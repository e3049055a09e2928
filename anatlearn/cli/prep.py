"""``anatlearn prep``: bring T1w images (BIDS or a list) into the released weights' input space."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from anatlearn.cli import app
from anatlearn.prep import SEGMENTATION_SMOOTHING_MM


# the options anatlearn bids shares with prep (one declaration, one help text)
TARGET_OPTION = typer.Option("vbm", "--modality", help="The images to make, as OpenBHB's modalities: vbm (modulated GM, 121x145x121, 1.5 mm) or quasiraw (T1w, 182x218x182, 1 mm).")
SKULL_STRIP_OPTION = typer.Option("auto", "--skull-strip", help="Brain extraction with deepbet: auto (when the image has a skull; recorded in qc.tsv), yes, no.")
JOBS_OPTION = typer.Option(1, "--jobs", "-j", help="Subjects prepared in parallel (processes; --threads each).")
THREADS_OPTION = typer.Option(None, "--threads", help="ITK and deepbet threads per subject (default 1: bit-identical reruns; more is faster for one subject but not bit-identical, docs/prep.md).")
TEMPLATE_RESOLUTION_OPTION = typer.Option(1.0, "--template-resolution", help="Voxel size (mm) of the MNI152 template used for registration; 2 makes SyN ~7x faster (docs/prep.md).")
TARGET_VOXEL_MM_OPTION = typer.Option(None, "--target-voxel-mm", help="Coarser output grid over the same box (testing only; the weights need the default).")
SYN_ITERATIONS_OPTION = typer.Option("40,20,0", "--syn-iterations", help="SyN iterations per level (coarse to fine).")
SEED_OPTION = typer.Option(0, "--seed", help="Random seed of ANTs' metric sampling (recorded in each QC JSON).")


@app.command("prep")
def prep_command(
    out: Path = typer.Option(..., "--out", help="Output directory (OpenBHB per-subject layout, qc.tsv, qc.html)."),
    bids: Optional[Path] = typer.Option(None, "--bids", help="BIDS directory: participants.tsv + sub-*/[ses-*/]anat/*_T1w.nii[.gz]."),
    images: Optional[Path] = typer.Option(None, "--images", help="CSV/TSV list: participant_id, path (+ columns carried over)."),
    target: str = TARGET_OPTION,
    skull_strip: str = SKULL_STRIP_OPTION,
    jobs: int = JOBS_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    registration: str = typer.Option("auto", "--registration", help="auto (affine for quasiraw, affine+SyN for vbm), syn, affine, rigid, none."),
    template_resolution: float = TEMPLATE_RESOLUTION_OPTION,
    target_voxel_mm: Optional[float] = TARGET_VOXEL_MM_OPTION,
    n4: bool = typer.Option(True, "--n4/--no-n4", help="N4 bias-field correction."),
    syn_iterations: str = SYN_ITERATIONS_OPTION,
    atropos_iterations: int = typer.Option(5, "--atropos-iterations", help="Atropos EM iterations."),
    segmentation_smoothing: float = typer.Option(SEGMENTATION_SMOOTHING_MM, "--segmentation-smoothing", help="Sigma (mm) of the Gaussian smoothing inside the brain of the image that segmentation sees (0: none; docs/prep.md)."),
    modulation: str = typer.Option("full", "--modulation", help="Jacobian modulation of GM: full (affine x SyN), nonlinear, none."),
    min_correlation: float = typer.Option(0.5, "--min-correlation", help="QC gate: a subject whose correlation with the template is lower is reported as failed."),
    flag_dice: Optional[float] = typer.Option(None, "--flag-dice", help="QC: flag a subject whose brain-mask Dice with the template is lower (default 0.95; docs/prep.md)."),
    flag_corr: Optional[float] = typer.Option(None, "--flag-corr", help="QC: flag a subject whose T1w correlation with the template is lower (default 0.53)."),
    flag_corr_gm: Optional[float] = typer.Option(None, "--flag-corr-gm", help="QC: flag a vbm subject whose GM map's correlation with the template GM is lower (default 0.50)."),
    nifti: bool = typer.Option(True, "--nifti/--no-nifti", help="Also write each volume as NIfTI with its MNI affine."),
    seed: int = SEED_OPTION,
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every subject, even finished ones (and accept changed options)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Record invalid input images as failed in qc.tsv instead of stopping."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: prepare only subjects I, I+N, ... (I from 0) of a job array; default from SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT. Shared files are left to --merge."),
    merge: bool = typer.Option(False, "--merge", help="After the --shard tasks: write participants.tsv, qc.tsv, qc.html from what every task finished; list failed and missing subjects."),
) -> None:
    """Prepare T1w images (N4, registration to MNI152, segmentation, modulation); see docs/prep.md."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path
    from anatlearn.prep import require_ants
    from anatlearn.prep.run import merge_prep, run_prep
    from anatlearn.prep.shards import Shard

    config = prep_config(syn_iterations, target=target, n4=n4, registration=registration,
                        template_resolution=template_resolution, target_voxel_mm=target_voxel_mm,
                        atropos_iterations=atropos_iterations, segmentation_smoothing=segmentation_smoothing,
                        modulation=modulation, min_correlation=min_correlation, write_nifti=nifti, jobs=jobs,
                        threads=threads, seed=seed, skull_strip=skull_strip,
                        **{k: v for k, v in (("flag_dice_brain", flag_dice), ("flag_corr_template", flag_corr),
                                             ("flag_corr_gm", flag_corr_gm)) if v is not None})
    check_output_path(out, "dir", "--out")
    inputs = {"bids": str(bids) if bids else None, "images": str(images) if images else None}
    echo = lambda s: typer.echo(s, err=True)  # noqa: E731
    if merge:
        if shard is not None:
            raise ConfigError("--merge assembles the output of every --shard task: give one of them, not both")
        summary = merge_prep(out, config, **inputs, echo=echo)
        typer.echo(summary.line())
        return
    part = Shard.parse(shard) if shard is not None else Shard.from_slurm()
    require_ants(config.skull_strip)
    summary = run_prep(out, config, **inputs, overwrite=overwrite, skip_invalid=skip_invalid,
                       progress=sys.stderr.isatty(), echo=echo, shard=part)
    typer.echo(summary.line())


def prep_config(syn_iterations: str, **options):
    """The PrepConfig of the command line's options (``--syn-iterations`` as "40,20,0")."""
    from anatlearn.errors import ConfigError
    from anatlearn.prep.pipeline import PrepConfig

    try:
        iters = tuple(int(v) for v in syn_iterations.split(","))
    except ValueError:
        raise ConfigError(f"--syn-iterations must be integers separated by commas, got {syn_iterations!r}") from None
    return PrepConfig(syn_iterations=iters, **options)
