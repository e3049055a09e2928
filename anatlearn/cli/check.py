"""``anatlearn check``: are the maps of a dataset like the maps the weights were trained on?"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("check")
def check_command(
    weights: str = typer.Option(..., "--weights", help="Checkpoint: anatlearn .pt/.safetensors, a released AnatCL .pth (path or URL), an exported folder or hf-hub:ORG/NAME."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (OpenBHB layout, NIfTI + participants table, or a CAT12 output tree)."),
    out: Path = typer.Option(..., "--out", help="Output table (.tsv): participant_id, ok, reasons, then the statistics; OUT.meta.json records the reference and versions."),
    split: str = typer.Option(None, "--split", help="Only this split of the dataset (e.g. train, internal_test)."),
    modality: str = typer.Option("vbm", help="OpenBHB images: vbm (gray-matter maps) or quasiraw."),
    model: str = typer.Option("resnet18", "--model", help="Encoder architecture of a released checkpoint (anatlearn checkpoints store their own)."),
    width: float = typer.Option(1.0, help="Width multiplier of a released checkpoint's architecture."),
    strict: bool = typer.Option(False, "--strict", help="Any flagged subject is an error (exit status 2; the table is still written)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out table (and its .meta.json) whole (default: an existing output is refused)."),
) -> None:
    """Check every map of DATA against the fingerprint of the maps WEIGHTS were trained on (intensity range,
    signal outside the brain, total tissue, likeness to the mean map, centre, smoothness); one row per
    subject with ok and the reasons in words (docs/evaluation.md says what the check can and cannot see)."""
    from anatlearn.data import open_dataset
    from anatlearn.errors import ConfigError
    from anatlearn.inputcheck import reference_for_weights, run_check, strict_error, summary_line
    from anatlearn.inputcheck.check import accepted_ranges
    from anatlearn.io import atomic_write_text, refuse_existing
    from anatlearn.provenance import provenance

    refuse_existing(out, "file", overwrite, "--out")
    dataset = open_dataset(data, split=split, modality=modality, require_age=False)
    ref = run_check(dataset, reference_for_weights(weights, model=model, width=width))
    if ref.results is None:
        raise ConfigError(f"cannot check {data} against --weights {weights}: {ref.note}")
    table = ref.results.assign(ok=ref.results["ok"].map({True: "true", False: "false"}))
    atomic_write_text(out, table.to_csv(sep="\t", index=False))
    config = {"weights": str(weights), "data": str(data), "split": split, "modality": modality,
              "reference": ref.description, "reference_source": ref.fingerprint.get("source"),
              "ranges": accepted_ranges(ref.fingerprint)}
    atomic_write_text(out.with_name(out.name + ".meta.json"), json.dumps(provenance(None, config), indent=1))
    typer.echo(summary_line(ref, str(out)))
    if strict and not ref.results["ok"].all():
        raise strict_error(ref, str(data))
