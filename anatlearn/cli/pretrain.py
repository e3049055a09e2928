"""``anatlearn pretrain``: train an encoder with any method (see docs/training.md)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Optional

import typer

from anatlearn import DEFAULT_WORKERS
from anatlearn.cli import app
from anatlearn.cli.flags import flags_named


_AMP = {"fp32": "off"}  # --precision value -> TrainConfig.amp


def _default(field: str) -> str:
    """The TrainConfig default of ``field``, as the help shows it (the options default to None so that a
    --config file or a resumed run's stored config can decide)."""
    import dataclasses

    from anatlearn.pretrain.config import TrainConfig

    value = {f.name: f for f in dataclasses.fields(TrainConfig)}[field]
    value = value.default if value.default is not dataclasses.MISSING else value.default_factory()
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "none"
    return "''" if value == "" else str(value)


@app.command("pretrain")
def pretrain_command(
    data: Optional[str] = typer.Option(None, help="Dataset directory (OpenBHB layout, NIfTI + participants.tsv)."),
    method: Optional[str] = typer.Option(None, help="Pretraining method: simclr, yaware, expw, threshold, anatcl-local, anatcl-global, anat-only, l1-age, gmv-regression, descriptor-regression (regress CT, GMV, SA per region and age), anatcl-regression (AnatCL global + --lambda-reg x that regression, separate head); docs/losses.md.", show_default=_default("method")),
    out: Optional[str] = typer.Option(None, help="Run directory."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of options; flags override it."),
    model: Optional[str] = typer.Option(None, "--model", help="Encoder architecture: resnet18, resnet34, resnet50, densenet121, alexnet3d.", show_default=_default("encoder")),
    width: Optional[float] = typer.Option(None, help="Channel width multiplier (1.0 = the paper's model).", show_default=_default("width")),
    epochs: Optional[int] = typer.Option(None, help="Epochs (with --resume: a larger number extends the run).", show_default=_default("epochs")),
    batch_size: Optional[int] = typer.Option(None, help="Subjects per batch, all processes together.", show_default=_default("batch_size")),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate.", show_default=_default("lr")),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay.", show_default=_default("weight_decay")),
    temperature: Optional[float] = typer.Option(None, help="Contrastive temperature tau.", show_default=_default("temperature")),
    kernel: Optional[str] = typer.Option(None, help="Age kernel: rbf, gaussian, cauchy.", show_default=_default("kernel")),
    sigma: Optional[float] = typer.Option(None, help="Age kernel width in years.", show_default=_default("sigma")),
    lambda_age: Optional[float] = typer.Option(None, help="Weight of the age term (AnatCL).", show_default=_default("lambda_age")),
    lambda_anat: Optional[float] = typer.Option(None, help="Weight of the anatomical term (AnatCL).", show_default=_default("lambda_anat")),
    lambda_reg: Optional[float] = typer.Option(None, help="Weight of the regression term of anatcl-regression (chosen by the pre-registered selection of docs/study.md Part 6).", show_default=_default("lambda_reg")),
    descriptors: Optional[list[str]] = typer.Option(None, "--descriptor", help="Descriptor (CT, GMV, SA); repeatable.", show_default=_default("descriptors")),
    atlas: Optional[str] = typer.Option(None, help="desikan or destrieux.", show_default=_default("atlas")),
    modality: Optional[str] = typer.Option(None, help="OpenBHB images: vbm (gray-matter maps) or quasiraw.", show_default=_default("modality")),
    normalise: Optional[str] = typer.Option(None, help="Descriptor normalisation: zscore, minmax, none.", show_default=_default("normalise")),
    weight_map: Optional[str] = typer.Option(None, help="Cosine to weight: shift ((A+1)/2), clamp (max(A, 0)) or kernel (exp(-(1-A)/h)); `anatlearn weights` compares them.", show_default=_default("weight_map")),
    anat_bandwidth: Optional[float] = typer.Option(None, help="h of --weight-map kernel (0: the study's rule, mean anatomical weight = mean age-kernel weight).", show_default=_default("anat_bandwidth")),
    views: Optional[int] = typer.Option(None, help="Views per subject.", show_default=_default("views")),
    augment: Optional[list[str]] = typer.Option(None, "--augment", help="crop, cutout, flip, blur, noise; repeatable.", show_default="none"),
    split: Optional[str] = typer.Option(None, help="Split to train on where the participants table has a split column ('' for all subjects; a table without one is trained on whole).", show_default=_default("split")),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (GPU: bf16 or fp16 autocast; CPU: fp32), fp32, bf16, fp16.", show_default="auto"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if one is visible, else the CPU), cpu or cuda (under torchrun: each process's own GPU)."),
    seed: Optional[int] = typer.Option(None, help="Random seed.", show_default=_default("seed")),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data-loading worker processes.", show_default=str(DEFAULT_WORKERS)),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="channels_last_3d activations (faster CPU steps for narrow models, e.g. width 0.25).", show_default="off"),
    checkpoint_every: Optional[int] = typer.Option(None, help="Also write checkpoints/last.pt every N steps.", show_default="0: at each epoch end only"),
    keep_last: Optional[int] = typer.Option(None, help="Full checkpoints (model + optimiser, checkpoints/epoch-NNNN.pt) to keep, newest first; last.pt is the newest.", show_default=_default("keep_last")),
    keep_every: Optional[int] = typer.Option(None, help="Also keep a weights-only milestone (checkpoints/epoch-NNNN.weights.pt, no optimiser state) every N epochs.", show_default="0: none"),
    save_epochs: Optional[str] = typer.Option(None, help="Weights-only milestones at these epochs, comma-separated, e.g. 10,30,100.", show_default="none"),
    resume: bool = typer.Option(False, help="Continue the run in --out exactly where it stopped, with the options it was started with (any given here override them)."),
    overwrite: bool = typer.Option(False, help="Replace a run already in --out."),
    stop_after_steps: Optional[int] = typer.Option(None, hidden=True),
) -> None:
    """Pretrain an encoder; writes config.toml, metrics.csv and checkpoints/ to the run directory.

    Disk: by default one full checkpoint is kept (last.pt, a hard link to the newest epoch-NNNN.pt); see
    --keep-last, --keep-every and --save-epochs (docs/training.md)."""
    from anatlearn.errors import ConfigError
    from anatlearn.io import check_output_path
    from anatlearn.pretrain import pretrain, resolve_config
    from anatlearn.pretrain.config import stored_data, stored_run_config

    # option -> TrainConfig field; None: not given (the --config file or the default decides)
    overrides = dict(
        data=data, method=method, out=out, encoder=model, width=width, epochs=epochs, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, temperature=temperature, kernel=kernel, sigma=sigma,
        lambda_age=lambda_age, lambda_anat=lambda_anat, lambda_reg=lambda_reg, descriptors=descriptors or None, atlas=atlas,
        modality=modality, normalise=normalise, weight_map=weight_map, anat_bandwidth=anat_bandwidth, views=views,
        augment=augment or None, split=split, amp=_AMP.get(precision, precision), seed=seed, num_workers=workers,
        channels_last=channels_last, checkpoint_every=checkpoint_every, keep_last=keep_last, keep_every=keep_every,
        save_epochs=None if save_epochs is None else _epoch_list(save_epochs))
    stored = None
    if resume and config is None and out:  # --resume alone: the run's own options, any given here on top
        stored = config = stored_run_config(out)
    _use_device(device)
    with flags_named(PARAMETER_FLAGS):
        cfg = resolve_config(str(config) if config else None, overrides)
    if stored is not None and data is None:
        cfg.data = stored_data(cfg.data, stored)
    if not cfg.data or not cfg.out:
        raise ConfigError("--data and --out are required (on the command line or in --config)")
    check_output_path(cfg.out, "dir", "--out")
    if cfg.method == "simclr" and not cfg.augment and Path(cfg.data).is_dir():
        # two identical views: the positive pair is trivially aligned, only telling subjects apart is learnt
        typer.echo("warning: simclr without --augment trains on two identical views (instance discrimination "
                   "only); SimCLR's recipe augments them, e.g. --augment crop --augment noise", err=True)
    try:
        with flags_named(PARAMETER_FLAGS):
            path = pretrain(cfg, resume=resume, overwrite=overwrite, stop_after_steps=stop_after_steps)
    except KeyboardInterrupt:
        from anatlearn.pretrain.rundir import describe_resume_point, resume_point

        if resume_point(cfg.out) is None:
            typer.echo(f"anatlearn: pretraining interrupted before its first checkpoint; nothing to resume in "
                       f"{cfg.out}: run the same command with --overwrite to start again", err=True)
        else:
            typer.echo(f"anatlearn: pretraining interrupted; safe on disk: {describe_resume_point(cfg.out)}; "
                       f"continue with: anatlearn pretrain --out {shlex.quote(os.path.abspath(cfg.out))} --resume",
                       err=True)
        raise typer.Exit(130) from None
    typer.echo(f"run directory: {path}")


# The library's parameter names in error messages -> this command's flags.
PARAMETER_FLAGS = {"batch_size": "--batch-size", "keep_last": "--keep-last", "keep_every": "--keep-every",
                   "save_epochs": "--save-epochs", "to epochs": "to --epochs", "resume=True": "--resume",
                   "overwrite=True": "--overwrite", "amp='fp16'": "--precision fp16", "amp='bf16'": "--precision bf16",
                   "amp='off'": "--precision fp32", "num_workers": "--workers", "encoder": "--model", "anat_bandwidth": "--anat-bandwidth", "weight_map": "--weight-map",
                   "lambda_reg": "--lambda-reg"}


def _use_device(device: str) -> None:
    """Pretraining runs on the GPU when one is visible (anatlearn.distributed); ``cpu`` hides it before torch
    looks, ``cuda`` fails early where there is none."""
    import os

    from anatlearn.errors import ConfigError

    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif device not in ("auto", "cuda"):
        raise ConfigError(f"--device {device!r}: choose auto, cpu or cuda")
    elif device == "cuda":
        from anatlearn.precision import resolve_device

        resolve_device(device, "--device")


def _epoch_list(text: str) -> list[int]:
    """``"10,30,100"`` -> ``[10, 30, 100]`` (sorted, duplicates dropped); ``""`` -> no milestones."""
    from anatlearn.errors import ConfigError

    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return sorted({int(p) for p in parts})
    except ValueError:
        raise ConfigError(f"--save-epochs {text!r}: give whole epoch numbers separated by commas, e.g. 10,30,100") from None
