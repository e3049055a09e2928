"""``anatlearn study``: the resumable grid of pretraining runs and evaluations (see anatlearn.study)."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("study")
def study_command(
    out: Path = typer.Option(Path("study-out"), help="Study directory (cohorts, one directory per cell, results, "
                             "summary.md). Re-running the same command continues where it stopped."),
    grid: str = typer.Option("full", help="full (the pre-registered grid of docs/study.md), main (without the "
                             "ablations), views (the follow-up: crop-only and noise-only views; docs/study.md "
                             "Part 4), replication (the selected configurations on seeds 3-5; Part 5), run3 (the released "
                             "views, AnatCL, y-Aware and the two regression objectives on seeds 6-8; Part 6), "
                             "run3-select (run 3's lambda_reg selection, seed 9) "
                             "or quick (toy size, about a minute: checks the path)."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda (AMP on cuda, the training default)."),
    workers: int = typer.Option(1, help="Cells run in parallel processes (CPU threads are shared out among them; "
                                "on a GPU several small runs share the device)."),
    max_cells: int = typer.Option(None, help="Stop after this many cells in this invocation (resume later)."),
    aggregate_only: bool = typer.Option(False, "--aggregate-only", help="Only rewrite results/ and summary.md "
                                        "from the evaluations already on disk."),
    status: bool = typer.Option(False, "--status", help="Only print where the study stands (evaluations per "
                                "group and budget, cells in training, wall time); safe beside a running study."),
) -> None:
    """Pretrain every method of the grid at several seeds, evaluate each at several budgets, aggregate."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path

    if max_cells is not None and max_cells < 1:
        raise ConfigError(f"--max-cells must be at least 1, got {max_cells}")
    if status:
        from anatlearn.study.status import status_text, study_status

        typer.echo(status_text(out, study_status(out)))
        return
    if aggregate_only:
        from anatlearn.study.aggregate import aggregate_study

        if not (out / "study.json").is_file():
            raise ConfigError(f"--aggregate-only: {out} holds no study (no study.json)")
        typer.echo(f"summary: {aggregate_study(out)}")
        return
    check_output_path(out, "dir", "--out")
    from anatlearn.precision import resolve_device

    device = resolve_device(device, "--device").type
    if device == "cpu":  # pretraining picks a visible GPU by itself: hide it before torch looks
        import os

        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from anatlearn.study import run_study

    doc = run_study(out, grid=grid, device=device, workers=workers, max_cells=max_cells)
    if doc.get("complete"):
        typer.echo(f"study complete; summary: {doc.get('results')}")
    else:
        typer.echo("study stopped before the end (--max-cells); run the same command again to continue")
