"""Pretraining configuration: one dataclass, read from TOML, overridden by the caller's values, saved in the
run directory (``config.toml``). Defaults follow the released AnatCL recipe (Barbano et al. 2024): ResNet-18,
Adam lr 1e-4, weight decay 5e-5, lr x0.9 every 10 epochs, 32 subjects per batch, 2 views, tau 0.1, rbf
sigma 2, lambda_age = lambda_anat = 1."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from anatlearn.errors import ConfigError, differences
from anatlearn.losses.defaults import LAMBDA_REG

AMP_MODES = ("auto", "off", "bf16", "fp16")
# Keys that may change between a run and its resumption (they do not change what is computed).
RESUMABLE_KEYS = {"epochs", "out", "data", "num_workers", "progress", "checkpoint_every", "tensorboard",
                  "keep_last", "keep_every", "save_epochs"}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    method: str = "anatcl-global"
    encoder: str = "resnet18"
    width: float = 1.0
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 5e-5
    lr_step: int = 10
    lr_gamma: float = 0.9
    temperature: float = 0.1
    base_temperature: float = 0.0  # 0 means "equal to temperature" (TOML has no null)
    kernel: str = "rbf"
    sigma: float = 2.0
    lambda_age: float = 1.0
    lambda_anat: float = 1.0
    # weight of the regression term of anatcl-regression (losses.defaults.LAMBDA_REG: the
    # pre-registered selection of docs/study.md Part 6 sets it)
    lambda_reg: float = LAMBDA_REG
    descriptors: list[str] = field(default_factory=lambda: ["CT", "GMV", "SA"])
    atlas: str = "desikan"
    normalise: str = "zscore"
    weight_map: str = "shift"
    # bandwidth h of weight_map "kernel", exp(-(1 - A)/h); 0: the study's rule (mean anatomical weight equals
    # the age kernel's on the training subjects, losses.anatomy.matched_anat_bandwidth)
    anat_bandwidth: float = 0.0
    views: int = 2
    augment: list[str] = field(default_factory=list)
    split: str = "train"
    modality: str = "vbm"
    amp: str = "auto"
    seed: int = 0
    num_workers: int = 2
    checkpoint_every: int = 0
    # Checkpoint retention (docs/training.md): the keep_last most recent epoch-end full checkpoints
    # (checkpoints/epoch-NNNN.pt, model + optimiser state; last.pt is the newest, for resuming), plus weights-only
    # milestones (checkpoints/epoch-NNNN.weights.pt) every keep_every epochs (0: none) and at the save_epochs.
    keep_last: int = 1
    keep_every: int = 0
    save_epochs: list[int] = field(default_factory=list)
    deterministic: bool = False
    sync_bn: bool = True
    # channels_last_3d activations: faster CPU steps for narrow models (docs/training.md)
    channels_last: bool = False
    progress: bool = True
    tensorboard: bool = False

    def validate(self) -> "TrainConfig":
        # here, not at the top: the command line's help reads this module's defaults without importing torch
        from anatlearn.losses import ANAT_WEIGHT_MAPS, METHODS, method_spec

        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if method_spec(self.method).contrastive and self.batch_size < 2:
            raise ConfigError(f"batch_size {self.batch_size}: a contrastive method needs at least 2 subjects per batch")
        if self.batch_size < 1 or self.epochs < 1 or self.views < 1:
            raise ConfigError("batch_size, epochs and views must be positive")
        if self.method == "simclr" and self.views < 2 and not self.augment:
            raise ConfigError("simclr needs at least 2 views")
        from anatlearn.models import ENCODERS

        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"unknown amp mode {self.amp!r}; choose one of {', '.join(AMP_MODES)}")
        for name in ("lr", "temperature", "sigma", "width"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if not (math.isfinite(self.lambda_reg) and self.lambda_reg >= 0):
            raise ConfigError(f"lambda_reg must be a non-negative number, got {self.lambda_reg!r}")
        if self.keep_last < 1:
            raise ConfigError(f"keep_last {self.keep_last}: keep at least 1 full checkpoint (last.pt, for resuming)")
        if self.keep_every < 0:
            raise ConfigError(f"keep_every {self.keep_every}: give a number of epochs >= 1, or 0 for no milestones")
        bad = [e for e in self.save_epochs if isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= self.epochs]
        if bad:
            raise ConfigError(f"save_epochs {bad[0]!r}: milestone epochs must be whole numbers from 1 to epochs "
                              f"({self.epochs})")
        if self.weight_map not in ANAT_WEIGHT_MAPS:
            raise ConfigError(f"unknown weight_map {self.weight_map!r}; choose one of {', '.join(ANAT_WEIGHT_MAPS)}")
        if not (math.isfinite(self.anat_bandwidth) and self.anat_bandwidth >= 0):
            raise ConfigError(f"anat_bandwidth must be >= 0 (0: the matching rule), got {self.anat_bandwidth!r}")
        if self.normalise not in ("zscore", "minmax", "none"):
            raise ConfigError(f"unknown normalise {self.normalise!r}; choose zscore, minmax or none")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in values if k not in known]
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r} (valid keys: {', '.join(known)})")
        cfg = cls()
        for key, value in values.items():
            default = getattr(cfg, key)
            if isinstance(default, bool) and not isinstance(value, bool):
                raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
                value = type(default)(value)
            elif isinstance(default, list) and not isinstance(value, list):
                raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
            setattr(cfg, key, value)
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file() and path.suffix == "" and path.name in packaged_configs():
            path = Path(str(resources.files("anatlearn") / "configs" / f"{path.name}.toml"))
        if not path.is_file():
            shipped = ", ".join(packaged_configs())
            raise ConfigError(f"config file not found: {path} (or give a shipped recipe by name: {shipped})")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"cannot parse {path}: {exc}") from None
        return cls.from_dict(values, str(path))

    def differences(self, other: "TrainConfig") -> list[str]:
        """``"key: A in the run, B now"`` (:func:`anatlearn.errors.differences`) for every key other than
        :data:`RESUMABLE_KEYS` whose values differ, ``self`` being the run's: a resume must have none."""
        a, b = ({k: v for k, v in c.to_dict().items() if k not in RESUMABLE_KEYS} for c in (self, other))
        return differences(a, b)


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``data`` and ``out`` made absolute (from the working directory), as the run stores them:
    a resume then works from any directory."""
    return dataclasses.replace(cfg, **{k: os.path.abspath(v) for k in ("data", "out") if (v := getattr(cfg, k))})


def stored_run_config(out: str | os.PathLike) -> Path:
    """``RUN/config.toml``, the options a resume of the run in ``out`` starts from; a ConfigError says what is
    missing: the run folder itself, or its config.toml."""
    run = Path(out)
    if not run.is_dir():
        where = "" if run.is_absolute() else f" (looked for from {os.getcwd()})"
        raise ConfigError(f"cannot resume: the run folder {run} does not exist{where}; check `out`")
    path = run / "config.toml"
    if not path.is_file():
        raise ConfigError(f"cannot resume: {run} holds no pretraining run (no config.toml)")
    return path


def stored_data(data: str, stored: Path) -> str:
    """The data directory of a resumed run, as read from its ``stored`` config.toml: absolute since runs store
    it so; an older run's relative path is tried from here, then from the run folder. A ConfigError names the
    config.toml it came from and the option that replaces it when that directory is gone."""
    path = Path(data)
    candidates = [path] if path.is_absolute() else [path, stored.parent / path]
    for candidate in candidates:
        if candidate.is_dir():
            return os.path.abspath(candidate)
    raise ConfigError(f"data directory {data} (stored in {stored}) no longer exists; give `data` to say where "
                      f"the run's data is now")


def packaged_configs() -> list[str]:
    """Names of the recipes shipped in the package (``anatlearn/configs/<name>.toml``), e.g. anatcl-openbhb."""
    folder = resources.files("anatlearn") / "configs"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_config(config_file: str | None, overrides: dict) -> TrainConfig:
    """File values, then every override that is not None (the overrides win)."""
    cfg = TrainConfig.from_toml(config_file) if config_file else TrainConfig()
    values = cfg.to_dict()
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, "options").validate()
