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
    out_file: Path = typer.Argument(None, hidden=True),  # `export CKPT OUT.safetensors`, earlier releases
    out: Path = typer.Option(None, "--out", help="Hub-format folder to create (model.safetensors, config.json, README.md: the model card), or a bare OUT.safetensors file."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Where to look for evaluation results (results.json) for the card; default: the checkpoint's run directory."),
    license: str = typer.Option("mit", "--license", help="License identifier in the model card's front matter."),
    model: str = typer.Option("resnet18", help="Architecture of a released AnatCL checkpoint."),
    width: float = typer.Option(1.0, help="Width multiplier of a released AnatCL checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output whole (default: an existing output is refused)."),
) -> None:
    """Export a checkpoint as a Hugging Face Hub-format folder (weights, config and model card), loadable with
    --weights DIR, load_pretrained(DIR) or, once uploaded, --weights hf-hub:ORG/NAME."""
    from anatlearn.errors import ConfigError
    from anatlearn.models import export_safetensors, load_pretrained
    from anatlearn.io import new_output, refuse_existing

    if (out is None) == (out_file is None):
        raise ConfigError("give exactly one output: --out DIR (a Hub-format folder) or --out FILE.safetensors")
    if out_file is not None:
        typer.echo(f"anatlearn: warning: `anatlearn export CKPT OUT` is deprecated; use --out {out_file} (it will "
                   f"be removed in the next release)", err=True)
    elif out.suffix == ".safetensors":
        out_file, out = out, None
    if out_file is not None:
        if out_file.suffix != ".safetensors":
            raise ConfigError(f"export target {out_file} must end in .safetensors (or use --out DIR for a folder)")
        refuse_existing(out_file, "file", overwrite, "--out")
        net = load_pretrained(checkpoint, default_model=model, default_width=width)
        extra = {k: net.checkpoint_meta[k] for k in ("seed", "config", "input") if k in net.checkpoint_meta}
        export_safetensors(net, out_file, extra)
        typer.echo(f"wrote {out_file}")
        return
    from anatlearn.models.card import export_folder

    refuse_existing(out, "dir", overwrite, "--out")
    net = load_pretrained(checkpoint, default_model=model, default_width=width)
    if run_dir is None and Path(checkpoint).parent.name == "checkpoints":  # RUN/checkpoints/last.pt
        run_dir = Path(checkpoint).parent.parent
    with new_output(out, "dir", overwrite, "--out") as folder:
        export_folder(net, folder, source=checkpoint, run_dir=run_dir, license=license)
    typer.echo(f"wrote {out}/ (model.safetensors, config.json, README.md)")
