"""Pretraining: the loop (:mod:`~anatlearn.pretrain.loop`), its configuration (:mod:`~anatlearn.pretrain.config`)
and the run directory (:mod:`~anatlearn.pretrain.rundir`). docs/training.md."""

from anatlearn.errors import AnatlearnError
from anatlearn.pretrain.config import TrainConfig, resolve_config
from anatlearn.pretrain.loop import pretrain, train_step

__all__ = ["AnatlearnError", "TrainConfig", "pretrain", "resolve_config", "train_step"]
