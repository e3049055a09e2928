"""Pretraining: the loop (:mod:`~anatlearn.pretrain.loop`), its configuration (:mod:`~anatlearn.pretrain.config`)
and the run directory (:mod:`~anatlearn.pretrain.rundir`). docs/training.md.

The public names are imported on first use (PEP 562 ``__getattr__``) so that the command line's help can read
:class:`~anatlearn.pretrain.config.TrainConfig`'s defaults without importing torch.
"""

from __future__ import annotations

from anatlearn import lazy_exports

from anatlearn.errors import AnatlearnError

_PUBLIC = {"TrainConfig": "config", "resolve_config": "config", "pretrain": "loop", "train_step": "loop"}

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = ["AnatlearnError", "TrainConfig", "pretrain", "resolve_config", "train_step"]
