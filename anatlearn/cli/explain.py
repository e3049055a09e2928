"""``anatlearn explain``: region maps of a linear probe on frozen features."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("explain")
def explain_command(
    weights: str = typer.Option(..., "--weights", help="Encoder checkpoint (anatlearn .pt/.safetensors)."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (images + participants.tsv)."),
    task: str = typer.Option(..., "--task", help="The task whose probe is explained (e.g. AD-like-vs-CN)."),
    out: Path = typer.Option(..., "--out", help="Output directory (regions.tsv, NIfTI maps, regions.png, explain.json)."),
    tasks: str = typer.Option("synthetic", "--tasks", help="Task preset or TOML file defining --task."),
    participants: Path = typer.Option(None, "--participants", help="Labels table (default: the dataset's participants.tsv)."),
    features: str = typer.Option(None, "--features", help="Features of these images by these weights, [NAME=]PATH (skips embedding)."),
    atlas: str = typer.Option("auto", "--atlas", help="auto, world (synthetic cohort's regions), grid, or a label NIfTI on the model's input grid."),
    grid: int = typer.Option(4, "--grid", help="Patches per axis of the atlas-free grid."),
    subjects: int = typer.Option(48, "--subjects", help="Subjects attributed (a seeded random subset; the probe uses all)."),
    steps: int = typer.Option(32, "--steps", help="Integrated-gradients quadrature points."),
    batch_size: int = typer.Option(8, "--batch-size", help="Volumes per forward/backward pass."),
    seed: int = typer.Option(0, help="Seed of the probe's inner CV and of the subject subset."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out whole (default: an existing output is refused)."),
) -> None:
    """Integrated gradients through encoder + probe, aggregated per region; see docs/clinical.md."""
    from anatlearn.clinical.run import run_explain
    from anatlearn.io import new_output, refuse_existing

    refuse_existing(out, "dir", overwrite, "--out")
    from anatlearn.cli.vocabulary import split_named
    from anatlearn.precision import resolve_device

    features = Path(split_named(features)[1]) if features is not None else None

    device = str(resolve_device(device, "--device"))
    from anatlearn.progress import progress

    # the attributions are the slow part (tens of seconds on CPU): one step per attributed subject, on a terminal
    attributing = f"explain: integrated gradients, {steps} steps per subject"
    with new_output(out, "dir", overwrite, "--out") as folder, \
            progress("explain: embedding and fitting the probe", total=None) as bar:
        summary = run_explain(folder, weights, data, task, tasks, participants, features, atlas, grid, subjects, steps,
                              batch_size, seed, device=device,
                              progress=lambda done, total: bar.update(completed=done, total=total,
                                                                      description=attributing))
    top = ", ".join(f"{r['region']} ({100 * r['share']:.1f} %)" for r in summary["top_regions"][:5])
    typer.echo(f"{summary['n_explained']} subjects over {summary['n_regions']} regions ({summary['atlas']}); top: {top}")
    for disease, auc in summary.get("truth_auc", {}).items():
        typer.echo(f"  AUC of importance vs the true {disease} regions: {auc:.3f}")
    typer.echo(f"wrote {out}/regions.tsv, region_importance.nii.gz, regions.png")
