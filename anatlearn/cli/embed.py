"""``anatlearn embed``: extract frozen-encoder features of a dataset into a feature table."""

from __future__ import annotations

import copy
from pathlib import Path

import typer

from anatlearn.cli import app


@app.command("embed")
def embed_command(
    weights: str = typer.Option(..., "--weights", help="Checkpoint: anatlearn .pt/.safetensors, or a released AnatCL .pth (path or URL)."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (OpenBHB layout or NIfTI + participants table)."),
    out: Path = typer.Option(..., "--out", help="Output feature table: .parquet (metadata inside) or .csv (+ .meta.json)."),
    split: str = typer.Option(None, "--split", help="Only this split of the dataset (e.g. train, internal_test)."),
    modality: str = typer.Option("vbm", help="OpenBHB images: vbm (gray-matter maps) or quasiraw."),
    model: str = typer.Option("resnet18", help="Architecture of a released checkpoint (anatlearn checkpoints store their own)."),
    width: float = typer.Option(1.0, help="Width multiplier of a released checkpoint's architecture."),
    batch_size: int = typer.Option(8, "--batch-size", help="Volumes per forward pass."),
    device: str = typer.Option("cpu", help="torch device, e.g. cpu or cuda."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="channels_last_3d memory format (same features within ~1e-6; faster on CPU)."),
    jit: bool = typer.Option(True, "--jit/--no-jit", help="On CPU in fp32, run the encoder traced and frozen by TorchScript (same features within ~1e-6; faster)."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast (faster on recent hardware; ~3 significant digits)."),
    compare_fp32: bool = typer.Option(False, "--compare-fp32", help="Also embed the first batch in plain fp32 and report the max abs difference."),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes."),
) -> None:
    """Embed every subject of DATA with the frozen encoder of WEIGHTS; one row per participant_id."""
    import torch

    from anatlearn.data import open_dataset
    from anatlearn.embed import AnatEncoder, max_abs_difference
    from anatlearn.evaluate.features import write_features

    dataset = open_dataset(data, split=split, modality=modality, require_age=False)
    encoder = AnatEncoder(weights, model=model, width=width, batch_size=batch_size, device=device,
                          channels_last=channels_last, dtype="bf16" if bf16 else "float32", num_workers=num_workers,
                          progress=True, jit=jit)
    table = encoder.transform(dataset)
    if compare_fp32 and (bf16 or channels_last or jit):
        first = dataset.subset(list(range(min(batch_size, len(dataset)))))
        reference = copy.deepcopy(encoder.model).to(memory_format=torch.contiguous_format)
        plain = AnatEncoder(reference, batch_size=batch_size, device=device, channels_last=False,
                            jit=False).transform(first)
        diff = max_abs_difference(table.loc[plain.index], plain)
        table.attrs["metadata"]["max_abs_difference_vs_fp32"] = diff
        typer.echo(f"max |features - fp32 features| over {len(plain)} subjects: {diff:.3g}")
    write_features(table, out)
    typer.echo(f"wrote {table.shape[0]} subjects x {table.shape[1]} features to {out}")
