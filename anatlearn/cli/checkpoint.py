"""``anatlearn version``, ``anatlearn inspect CKPT`` and ``anatlearn export CKPT OUT.safetensors``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("version")
def version_command() -> None:
    """Print anatlearn's version and the versions of the libraries it uses."""
    from anatlearn.provenance import versions

    typer.echo(json.dumps(versions(), indent=2))


@app.command("inspect")
def inspect_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint path or URL (anatlearn, released AnatCL, safetensors)."),
    model: str = typer.Option("resnet18", help="Architecture of a released AnatCL checkpoint."),
    width: float = typer.Option(1.0, help="Width multiplier of a released AnatCL checkpoint."),
) -> None:
    """Load a checkpoint strictly and print its architecture, parameter count and stored metadata."""
    from anatlearn.models import load_pretrained

    net = load_pretrained(checkpoint, model=model, width=width)
    meta = {k: v for k, v in net.checkpoint_meta.items() if k in ("format", "seed", "config", "provenance")}
    info = {"model_config": net.model_config, "parameters": sum(p.numel() for p in net.parameters()),
            "representation_size": net.encoder.out_features, **meta}
    typer.echo(json.dumps(info, indent=2, default=str))


@app.command("export")
def export_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint path or URL."),
    out: Path = typer.Argument(..., help="Output .safetensors file."),
    model: str = typer.Option("resnet18", help="Architecture of a released AnatCL checkpoint."),
    width: float = typer.Option(1.0, help="Width multiplier of a released AnatCL checkpoint."),
) -> None:
    """Export a checkpoint's weights to safetensors (no pickle; loadable anywhere)."""
    from anatlearn.errors import ConfigError
    from anatlearn.models import export_safetensors, load_pretrained

    if out.suffix != ".safetensors":
        raise ConfigError(f"export target {out} must end in .safetensors")
    from anatlearn.io import check_output_path

    check_output_path(out, "file", "OUT")
    net = load_pretrained(checkpoint, model=model, width=width)
    extra = {k: net.checkpoint_meta[k] for k in ("seed", "config") if k in net.checkpoint_meta}
    export_safetensors(net, out, extra)
    typer.echo(f"wrote {out}")
