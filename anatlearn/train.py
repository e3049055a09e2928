"""Kept for one release: the pretraining loop lives in :mod:`anatlearn.pretrain`."""
from anatlearn.pretrain import AnatlearnError, TrainConfig, pretrain, train_step  # noqa: F401
