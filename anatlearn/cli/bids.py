"""``anatlearn bids``: the BIDS App (participant level, then group level); see docs/bids.md."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from anatlearn.cli import app
from anatlearn.cli.prep import (JOBS_OPTION, SEED_OPTION, SKULL_STRIP_OPTION, SYN_ITERATIONS_OPTION, TARGET_OPTION,
                                TARGET_VOXEL_MM_OPTION, TEMPLATE_RESOLUTION_OPTION, THREADS_OPTION, prep_config)


def _command_line(ctx: typer.Context) -> str:
    """This invocation as one shell line, rebuilt from the parsed parameters (the same whether the command
    came from a shell, a container's entry point or a Python call)."""
    import click

    words = ["anatlearn", "bids"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif value not in (None, param.default, [], ()):
            flag = max(param.opts, key=len)
            if isinstance(value, bool):
                words.append(flag if value else next(o for o in param.secondary_opts))
            else:
                words += [w for v in (value if isinstance(value, (list, tuple)) else [value]) for w in (flag, str(v))]
    return shlex.join(words)


@app.command("bids")
def bids_command(
    ctx: typer.Context,
    bids_dir: Path = typer.Argument(..., help="The input BIDS dataset (raw T1w scans)."),
    output_dir: Path = typer.Argument(..., help="The BIDS-Derivatives output directory."),
    analysis_level: str = typer.Argument(..., help="participant (prep and embed each scan) or group (tables and QC page)."),
    participant_label: Optional[List[str]] = typer.Option(None, "--participant-label", help="A participant to process, without 'sub-' (repeatable; default all)."),
    session_label: Optional[List[str]] = typer.Option(None, "--session-label", help="A session to process, without 'ses-' (repeatable; default all)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Encoder weights (participant level): a checkpoint, URL or Hub-format folder."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Intermediates (kept, so an interrupted run resumes); default a temporary directory."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo scans that are already done."),
    label: Optional[str] = typer.Option(None, "--model-label", help="The features' desc- label (default: the architecture, e.g. resnet18)."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda (the encoder)."),
    target: str = TARGET_OPTION,
    jobs: int = JOBS_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    skull_strip: str = SKULL_STRIP_OPTION,
    template_resolution: float = TEMPLATE_RESOLUTION_OPTION,
    target_voxel_mm: Optional[float] = TARGET_VOXEL_MM_OPTION,
    syn_iterations: str = SYN_ITERATIONS_OPTION,
    allow_grid_mismatch: bool = typer.Option(False, "--allow-grid-mismatch", help="Embed on a prep target grid other "
                                             "than the encoder was trained on (refused by default); recorded."),
    seed: int = SEED_OPTION,
) -> None:
    """Run anatlearn as a BIDS App: one job per participant, then one group job (docs/bids.md)."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path

    if analysis_level not in ("participant", "group"):
        raise ConfigError(f"analysis level must be participant or group, got {analysis_level!r}")
    check_output_path(output_dir, "dir", "OUTPUT_DIR")
    if analysis_level == "group":
        from anatlearn.bids.group import run_group

        summary = run_group(output_dir, participant_label, session_label, bids_dir=bids_dir)
        typer.echo(summary.line())
        if summary.missing:
            typer.echo(f"note: {summary.missing_note()}", err=True)
        return
    from anatlearn.bids.participant import run_participant
    from anatlearn.prep import require_ants

    if weights is None:
        raise ConfigError("the participant level embeds each scan: give --weights (a checkpoint or Hub folder)")
    if bids_dir.resolve() == output_dir.resolve():
        raise ConfigError("OUTPUT_DIR must differ from BIDS_DIR (derivatives go to their own directory)")
    config = prep_config(syn_iterations, target=target, skull_strip=skull_strip, template_resolution=template_resolution,
                         target_voxel_mm=target_voxel_mm, jobs=jobs, threads=threads, seed=seed)
    require_ants(config.skull_strip)
    summary = run_participant(bids_dir, output_dir, weights, participant_label, session_label, work_dir, overwrite,
                              config, label, device, command_line=_command_line(ctx),
                              show_progress=sys.stderr.isatty(), echo=lambda s: typer.echo(s, err=True),
                              allow_grid_mismatch=allow_grid_mismatch)
    typer.echo(summary.line())
    if summary.failed:  # BIDS Apps: a non-zero exit unless every selected scan succeeded
        raise typer.Exit(1)
