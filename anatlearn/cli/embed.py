"""``anatlearn embed``: extract frozen-encoder features of a dataset into a feature table."""

from __future__ import annotations

import copy
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Tuple

import typer

from anatlearn.cli import app

CHUNK_SIZE = 64  # anatlearn.embed_parts.DEFAULT_CHUNK (not imported here: it pulls in torch at start-up)


@app.command("embed")
def embed_command(
    weights: str = typer.Option(..., "--weights", help="Checkpoint: anatlearn .pt/.safetensors, a released AnatCL .pth (path or URL), an exported folder or hf-hub:ORG/NAME."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (OpenBHB layout, NIfTI + participants table, or a CAT12 output tree)."),
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
    chunk_size: int = typer.Option(CHUNK_SIZE, "--chunk-size", help="Subjects per part file in OUT.parts/: a killed run re-run with the same arguments redoes at most one chunk per process."),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT.parts/ after the table is written (default: deleted)."),
    center_crop: Optional[Tuple[int, int, int]] = typer.Option(None, "--center-crop", metavar="X Y Z", help="Embed the centred X x Y x Z crop of every volume (e.g. 121 128 121, the released package README's size; default: the whole 121x145x121 grid, what the released weights were trained on; docs/getting-data.md)."),
    stop_after_chunks: int = typer.Option(None, "--stop-after-chunks", hidden=True),
) -> None:
    """Embed every subject of DATA with the frozen encoder of WEIGHTS; one row per participant_id.

    Under torchrun each process embeds a disjoint share of fixed chunks and rank 0 writes the one table
    (docs/scale.md). Chunks are kept in OUT.parts/ until the table is written, so re-running a killed
    command finishes it; a re-run with other weights or options into the same OUT is refused."""
    import torch

    from anatlearn.data import open_dataset
    from anatlearn.embed import AnatEncoder, max_abs_difference
    from anatlearn.embed_parts import embed_in_parts, init_from_env, parts_dir, teardown
    from anatlearn.evaluate.features import write_features
    from anatlearn.io import check_output_path

    check_output_path(out, "file", "--out")
    check_output_path(parts_dir(out), "dir", "--out")
    dataset = open_dataset(data, split=split, modality=modality, require_age=False, center_crop=center_crop)
    rank = init_from_env()
    try:
        if device == "cuda" and rank.enabled:
            device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
        encoder = AnatEncoder(weights, model=model, width=width, batch_size=batch_size, device=device,
                              channels_last=channels_last, dtype="bf16" if bf16 else "float32",
                              num_workers=num_workers, progress=False, jit=jit)
        source = {"data": str(Path(data).resolve()), "split": split, "modality": modality,
                  **({"center_crop": list(center_crop)} if center_crop else {})}
        write = (lambda table, path: None) if compare_fp32 else write_features  # written below, with the check
        result = embed_in_parts(encoder, dataset, out, source, chunk_size=chunk_size, d=rank, write=write,
                                stop_after_chunks=stop_after_chunks, keep_parts=keep_parts or compare_fp32,
                                progress=sys.stderr.isatty())
    finally:
        teardown(rank)
    if result.table is None:  # ranks other than 0: rank 0 writes the table
        return
    table = result.table
    if compare_fp32:
        if bf16 or channels_last or jit:
            first = dataset.subset(list(range(min(batch_size, len(dataset)))))
            reference = copy.deepcopy(encoder.model).to(memory_format=torch.contiguous_format)
            plain = AnatEncoder(reference, batch_size=batch_size, device=device, channels_last=False,
                                jit=False).transform(first)
            diff = max_abs_difference(table.loc[plain.index], plain)
            table.attrs["metadata"]["max_abs_difference_vs_fp32"] = diff
            typer.echo(f"max |features - fp32 features| over {len(plain)} subjects: {diff:.3g}")
        write_features(table, out)
        if not keep_parts:
            shutil.rmtree(parts_dir(out), ignore_errors=True)
    resumed = f" ({result.skipped} of {result.n_chunks} chunks were already done)" if result.skipped else ""
    typer.echo(f"wrote {table.shape[0]} subjects x {table.shape[1]} features to {out}{resumed}")
