"""``anatlearn pretrain``: train an encoder with any method (see docs/training.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from anatlearn.cli import app
from anatlearn.cli.flags import flags_named


@app.command("pretrain")
def pretrain_command(
    data: Optional[str] = typer.Option(None, help="Dataset directory (OpenBHB layout, NIfTI + participants.tsv)."),
    method: Optional[str] = typer.Option(None, help="simclr, yaware, expw, threshold, anatcl-local, anatcl-global (default), anat-only, l1-age, gmv-regression, descriptor-regression (regress CT, GMV, SA per region and age), anatcl-regression (AnatCL global + --lambda-reg x that regression, separate head)."),
    out: Optional[str] = typer.Option(None, help="Run directory."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of options; flags override it."),
    encoder: Optional[str] = typer.Option(None, help="resnet18 (default), resnet34, resnet50, densenet121, alexnet3d."),
    width: Optional[float] = typer.Option(None, help="Channel width multiplier (1.0 = the paper's model)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default 50)."),
    batch_size: Optional[int] = typer.Option(None, help="Subjects per batch, all processes together (default 32)."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (default 1e-4)."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay (default 5e-5)."),
    temperature: Optional[float] = typer.Option(None, help="Contrastive temperature tau (default 0.1)."),
    kernel: Optional[str] = typer.Option(None, help="Age kernel: rbf (default), gaussian, cauchy."),
    sigma: Optional[float] = typer.Option(None, help="Age kernel width in years (default 2)."),
    lambda_age: Optional[float] = typer.Option(None, help="Weight of the age term (AnatCL)."),
    lambda_anat: Optional[float] = typer.Option(None, help="Weight of the anatomical term (AnatCL)."),
    lambda_reg: Optional[float] = typer.Option(None, help="Weight of the regression term of anatcl-regression (default 0.1, chosen by the pre-registered selection of docs/study.md Part 6)."),
    descriptors: Optional[list[str]] = typer.Option(None, "--descriptor", help="Descriptor (CT, GMV, SA); repeatable."),
    atlas: Optional[str] = typer.Option(None, help="desikan (default) or destrieux."),
    modality: Optional[str] = typer.Option(None, help="OpenBHB images: vbm (default, gray-matter maps) or quasiraw."),
    normalise: Optional[str] = typer.Option(None, help="Descriptor normalisation: zscore (default), minmax, none."),
    weight_map: Optional[str] = typer.Option(None, help="Cosine to weight: shift ((A+1)/2, default), clamp (max(A, 0)) or kernel (exp(-(1-A)/h)); `anatlearn weights` compares them."),
    anat_bandwidth: Optional[float] = typer.Option(None, help="h of --weight-map kernel (default 0: the study's rule, mean anatomical weight = mean age-kernel weight)."),
    views: Optional[int] = typer.Option(None, help="Views per subject (default 2)."),
    augment: Optional[list[str]] = typer.Option(None, "--augment", help="crop, cutout, flip, blur, noise; repeatable (default none)."),
    split: Optional[str] = typer.Option(None, help="Split to train on (default train; '' for all subjects)."),
    amp: Optional[str] = typer.Option(None, help="auto (GPU: bf16/fp16; CPU: off), bf16, fp16, off."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
    num_workers: Optional[int] = typer.Option(None, help="Data-loading worker processes (default 2)."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="channels_last_3d activations (faster CPU steps for narrow models, e.g. width 0.25; default off)."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Also write checkpoints/last.pt every N steps (default: at each epoch end only)."),
    keep_last: Optional[int] = typer.Option(None, help="Full checkpoints (model + optimiser, checkpoints/epoch-NNNN.pt) to keep, newest first; last.pt is the newest (default 1)."),
    keep_every: Optional[int] = typer.Option(None, help="Also keep a weights-only milestone (checkpoints/epoch-NNNN.weights.pt, no optimiser state) every N epochs (default 0: none)."),
    save_epochs: Optional[str] = typer.Option(None, help="Weights-only milestones at these epochs, comma-separated, e.g. 10,30,100."),
    resume: bool = typer.Option(False, help="Continue the run in --out exactly where it stopped."),
    overwrite: bool = typer.Option(False, help="Replace a run already in --out."),
    stop_after_steps: Optional[int] = typer.Option(None, hidden=True),
) -> None:
    """Pretrain an encoder; writes config.toml, metrics.csv and checkpoints/ to the run directory.

    Disk: by default one full checkpoint is kept (last.pt, a hard link to the newest epoch-NNNN.pt); see
    --keep-last, --keep-every and --save-epochs (docs/training.md)."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path
    from anatlearn.pretrain import pretrain, resolve_config

    # option -> TrainConfig field; None: not given (the --config file or the default decides)
    overrides = dict(
        data=data, method=method, out=out, encoder=encoder, width=width, epochs=epochs, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, temperature=temperature, kernel=kernel, sigma=sigma,
        lambda_age=lambda_age, lambda_anat=lambda_anat, lambda_reg=lambda_reg, descriptors=descriptors or None, atlas=atlas,
        modality=modality, normalise=normalise, weight_map=weight_map, anat_bandwidth=anat_bandwidth, views=views,
        augment=augment or None, split=split, amp=amp, seed=seed, num_workers=num_workers,
        channels_last=channels_last, checkpoint_every=checkpoint_every, keep_last=keep_last, keep_every=keep_every,
        save_epochs=None if save_epochs is None else _epoch_list(save_epochs))
    with flags_named(PARAMETER_FLAGS):
        cfg = resolve_config(str(config) if config else None, overrides)
    if not cfg.data or not cfg.out:
        raise ConfigError("--data and --out are required (on the command line or in --config)")
    check_output_path(cfg.out, "dir", "--out")
    if cfg.method == "simclr" and not cfg.augment and Path(cfg.data).is_dir():
        # two identical views: the positive pair is trivially aligned, only telling subjects apart is learnt
        typer.echo("warning: simclr without --augment trains on two identical views (instance discrimination "
                   "only); SimCLR's recipe augments them, e.g. --augment crop --augment noise", err=True)
    with flags_named(PARAMETER_FLAGS):
        path = pretrain(cfg, resume=resume, overwrite=overwrite, stop_after_steps=stop_after_steps)
    typer.echo(f"run directory: {path}")


# The library's parameter names in error messages -> this command's flags.
PARAMETER_FLAGS = {"batch_size": "--batch-size", "keep_last": "--keep-last", "keep_every": "--keep-every",
                   "save_epochs": "--save-epochs", "to epochs": "to --epochs", "resume=True": "--resume",
                   "overwrite=True": "--overwrite", "amp='fp16'": "--amp fp16", "amp='bf16'": "--amp bf16",
                   "amp='off'": "--amp off", "anat_bandwidth": "--anat-bandwidth", "weight_map": "--weight-map",
                   "lambda_reg": "--lambda-reg"}


def _epoch_list(text: str) -> list[int]:
    """``"10,30,100"`` -> ``[10, 30, 100]`` (sorted, duplicates dropped); ``""`` -> no milestones."""
    from anatlearn.errors import ConfigError

    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return sorted({int(p) for p in parts})
    except ValueError:
        raise ConfigError(f"--save-epochs {text!r}: give whole epoch numbers separated by commas, e.g. 10,30,100") from None
