"""``anatlearn bids``: the BIDS App (participant level, then group level); see docs/bids.md."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from anatlearn.cli import app


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
    device: str = typer.Option("cpu", "--device", help="torch device of the encoder."),
    target: str = typer.Option("vbm", "--target", help="vbm (modulated GM map, 1.5 mm) or quasiraw (T1w, 1 mm), as in anatlearn prep."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Scans prepared in parallel (processes; --threads each)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ITK and deepbet threads per scan (default 1: bit-identical reruns)."),
    skull_strip: str = typer.Option("auto", "--skull-strip", help="auto, yes or no (anatlearn prep)."),
    template_resolution: float = typer.Option(1.0, "--template-resolution", help="Registration template voxel size (mm; anatlearn prep)."),
    target_voxel_mm: Optional[float] = typer.Option(None, "--target-voxel-mm", help="Coarser output grid (testing only; the weights need the default)."),
    syn_iterations: str = typer.Option("40,20,0", "--syn-iterations", help="SyN iterations per level (anatlearn prep)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of ANTs' metric sampling (recorded in each QC JSON)."),
) -> None:
    """Run anatlearn as a BIDS App: one job per participant, then one group job (docs/bids.md)."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path

    if analysis_level not in ("participant", "group"):
        raise ConfigError(f"analysis level must be participant or group, got {analysis_level!r}")
    check_output_path(output_dir, "dir", "OUTPUT_DIR")
    if analysis_level == "group":
        from anatlearn.bids.group import run_group

        typer.echo(run_group(output_dir, participant_label, session_label).line())
        return
    from anatlearn.bids.participant import run_participant
    from anatlearn.prep import require_ants
    from anatlearn.prep.pipeline import PrepConfig

    if weights is None:
        raise ConfigError("the participant level embeds each scan: give --weights (a checkpoint or Hub folder)")
    if bids_dir.resolve() == output_dir.resolve():
        raise ConfigError("OUTPUT_DIR must differ from BIDS_DIR (derivatives go to their own directory)")
    try:
        iters = tuple(int(v) for v in syn_iterations.split(","))
    except ValueError:
        raise ConfigError(f"--syn-iterations must be integers separated by commas, got {syn_iterations!r}") from None
    config = PrepConfig(target=target, skull_strip=skull_strip, template_resolution=template_resolution,
                        target_voxel_mm=target_voxel_mm, syn_iterations=iters, jobs=jobs, threads=threads, seed=seed)
    require_ants(config.skull_strip)
    summary = run_participant(bids_dir, output_dir, weights, participant_label, session_label, work_dir, overwrite,
                              config, label, device, command_line=_command_line(ctx),
                              show_progress=sys.stderr.isatty(), echo=lambda s: typer.echo(s, err=True))
    typer.echo(summary.line())
    if summary.failed:  # BIDS Apps: a non-zero exit unless every selected scan succeeded
        raise typer.Exit(1)
