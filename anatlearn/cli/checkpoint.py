"""``anatlearn version``, ``anatlearn inspect CKPT`` and ``anatlearn export CKPT --out DIR``."""

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
    checkpoint: str = typer.Argument(..., help="Checkpoint path, URL, exported folder or hf-hub:ORG/NAME."),
    model: str = typer.Option("resnet18", help="Architecture of a released AnatCL checkpoint."),
    width: float = typer.Option(1.0, help="Width multiplier of a released AnatCL checkpoint."),
) -> None:
    """Load a checkpoint strictly and print its architecture, parameter count and stored metadata."""
    from anatlearn.models import load_pretrained

    net = load_pretrained(checkpoint, default_model=model, default_width=width)
    meta = {k: v for k, v in net.checkpoint_meta.items() if k in ("format", "seed", "config", "provenance", "hub_config")}
    info = {"model_config": net.model_config, "parameters": sum(p.numel() for p in net.parameters()),
            "representation_size": net.encoder.out_features, **meta}
    typer.echo(json.dumps(info, indent=2, default=str))


@app.command("export")
def export_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint path or URL (anatlearn, released AnatCL, safetensors)."),
    out_file: Path = typer.Argument(None, metavar="[OUT.safetensors]", help="Bare safetensors file (older form; prefer --out)."),
    out: Path = typer.Option(None, "--out", help="Hub-format folder to create: model.safetensors, config.json, README.md (model card)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Where to look for evaluation results (results.json) for the card; default: the checkpoint's run directory."),
    license: str = typer.Option("mit", "--license", help="License identifier in the model card's front matter."),
    model: str = typer.Option("resnet18", help="Architecture of a released AnatCL checkpoint."),
    width: float = typer.Option(1.0, help="Width multiplier of a released AnatCL checkpoint."),
) -> None:
    """Export a checkpoint as a Hugging Face Hub-format folder (weights, config and model card), loadable with
    --weights DIR, load_pretrained(DIR) or, once uploaded, --weights hf-hub:ORG/NAME."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path
    from anatlearn.models import export_safetensors, load_pretrained

    if (out is None) == (out_file is None):
        raise ConfigError("give exactly one output: --out DIR (a Hub-format folder) or OUT.safetensors")
    if out_file is not None:
        if out_file.suffix != ".safetensors":
            raise ConfigError(f"export target {out_file} must end in .safetensors (or use --out DIR for a folder)")
        check_output_path(out_file, "file", "OUT")
        net = load_pretrained(checkpoint, default_model=model, default_width=width)
        extra = {k: net.checkpoint_meta[k] for k in ("seed", "config") if k in net.checkpoint_meta}
        export_safetensors(net, out_file, extra)
        typer.echo(f"wrote {out_file}")
        return
    from anatlearn.models.card import export_folder

    check_output_path(out, "dir", "--out")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; choose a new folder")
    net = load_pretrained(checkpoint, default_model=model, default_width=width)
    if run_dir is None and Path(checkpoint).parent.name == "checkpoints":  # RUN/checkpoints/last.pt
        run_dir = Path(checkpoint).parent.parent
    export_folder(net, out, source=checkpoint, run_dir=run_dir, license=license)
    typer.echo(f"wrote {out}/ (model.safetensors, config.json, README.md)")
