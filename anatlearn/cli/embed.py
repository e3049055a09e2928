"""``anatlearn embed``: extract frozen-encoder features of a dataset into a feature table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer

from anatlearn import DEFAULT_WORKERS
from anatlearn.cli import app
from anatlearn.embed import DEFAULT_CHUNK


@app.command("embed")
def embed_command(
    weights: str = typer.Option(..., "--weights", help="Checkpoint: anatlearn .pt/.safetensors, a released AnatCL .pth (path or URL), an exported folder or hf-hub:ORG/NAME."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (OpenBHB layout, NIfTI + participants table, or a CAT12 output tree)."),
    out: Path = typer.Option(..., "--out", help="Output feature table: .parquet (metadata inside) or .csv (+ .meta.json)."),
    split: str = typer.Option(None, "--split", help="Only this split of the dataset (e.g. train, internal_test)."),
    modality: str = typer.Option("vbm", help="OpenBHB images: vbm (gray-matter maps) or quasiraw."),
    model: str = typer.Option("resnet18", "--model", help="Encoder architecture of a released checkpoint (anatlearn checkpoints store their own)."),
    width: float = typer.Option(1.0, help="Width multiplier of a released checkpoint's architecture."),
    batch_size: int = typer.Option(8, "--batch-size", help="Volumes per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="channels_last_3d memory format (same features within ~1e-6; faster on CPU)."),
    jit: bool = typer.Option(True, "--jit/--no-jit", help="On CPU in fp32, run the encoder traced and frozen by TorchScript (same features within ~1e-6; faster)."),
    precision: str = typer.Option("auto", "--precision", help="auto (CPU: fp32; GPU: bf16 or fp16), fp32, bf16 or fp16 (autocast: faster on recent hardware; ~3 significant digits)."),
    compare_fp32: bool = typer.Option(False, "--compare-fp32", help="Also embed the first batch in plain fp32 and report the max abs difference."),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="DataLoader worker processes."),
    chunk_size: int = typer.Option(DEFAULT_CHUNK, "--chunk-size", help="Subjects per part file in OUT.parts/: a killed run re-run with the same arguments redoes at most one chunk per process."),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT.parts/ after the table is written (default: deleted)."),
    center_crop: Optional[Tuple[int, int, int]] = typer.Option(None, "--center-crop", metavar="X Y Z", help="Embed the centred X x Y x Z crop of every volume (e.g. 121 128 121, the released package README's size; default: the whole 121x145x121 grid, what the released weights were trained on; docs/getting-data.md)."),
    allow_grid_mismatch: bool = typer.Option(False, "--allow-grid-mismatch", help="Embed images on another grid than the encoder was trained on (refused by default: such features are meaningless); the table's metadata records it."),
    strict: bool = typer.Option(False, "--strict", help="Stop (exit status 2, nothing written) when any map looks unlike the training maps (anatlearn check)."),
    stop_after_chunks: int = typer.Option(None, "--stop-after-chunks", hidden=True),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing feature table whole (default: an existing output is refused)."),
) -> None:
    """Embed every subject of DATA with the frozen encoder of WEIGHTS; one row per participant_id.

    Under torchrun each process embeds a disjoint share of fixed chunks and rank 0 writes the one table
    (docs/scale.md). Chunks are kept in OUT.parts/ until the table is written, so re-running a killed
    command finishes it; a re-run with other weights or options into the same OUT is refused."""
    from anatlearn.embed import embed_dataset
    from anatlearn.io import refuse_existing

    refuse_existing(out, "file", overwrite, "--out")  # a killed run's OUT.parts/ (no table yet) still resumes

    result = embed_dataset(weights, data, out, split=split, modality=modality, model=model, width=width,
                           batch_size=batch_size, device=device, channels_last=channels_last, jit=jit, precision=precision,
                           compare_fp32=compare_fp32, workers=workers, chunk_size=chunk_size,
                           keep_parts=keep_parts, stop_after_chunks=stop_after_chunks,
                           center_crop=center_crop, allow_grid_mismatch=allow_grid_mismatch, strict=strict)
    if result.table is None:  # ranks other than 0: rank 0 writes the table
        return
    if result.max_abs_difference_vs_fp32 is not None:
        typer.echo(f"max |features - fp32 features| over {result.n_compared} subjects: "
                   f"{result.max_abs_difference_vs_fp32:.3g}")
    if result.input_check is not None:
        from anatlearn.inputcheck import summary_line

        typer.echo(summary_line(result.input_check, f"`anatlearn check --weights {weights} --data {data} --out "
                                                    f"check.tsv` for the reasons"))
    resumed = f" ({result.skipped} of {result.n_chunks} chunks were already done)" if result.skipped else ""
    typer.echo(f"wrote {result.table.shape[0]} subjects x {result.table.shape[1]} features to {out}{resumed}")
