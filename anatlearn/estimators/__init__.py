"""anatlearn in scikit-learn's shape: estimators that go into pipelines, ``cross_val_score`` and ``clone``.

- :class:`Encoder`: images (NIfTI paths, nibabel images, arrays, a dataset directory) -> frozen-encoder
  features, the same as ``anatlearn embed``.
- :class:`ComBat`: site harmonisation (``anatlearn harmonize``); ``sites`` and ``covariates`` arrive as
  metadata (``sklearn.set_config(enable_metadata_routing=True)``; ``params={"sites": sites}``).
- :class:`BrainAge`: ridge brain age with its bias correction (``anatlearn brain-age``); ``gap(X, ages)``.
- :class:`LinearProbe`: the probe of ``evaluate tasks`` (penalty chosen by inner CV);
  :func:`load_linear_probe` reads one saved by ``evaluate tasks --save-probes`` as a fitted LinearProbe.
- :class:`Pretrainer`: ``fit(dataset_dir)`` pretrains (resumable through ``out``), ``transform`` embeds.

Each follows scikit-learn's contract (``__init__`` stores parameters, ``fit`` validates them and returns
self, fitted attributes end in ``_``). The names are imported on first use, so ``import anatlearn`` stays
light; worked examples: docs/python.md.
"""

from __future__ import annotations

import importlib

_PUBLIC = {"Encoder": "anatlearn.estimators.encoder", "Pretrainer": "anatlearn.estimators.pretrainer",
           "ComBat": "anatlearn.clinical.combat", "BrainAge": "anatlearn.clinical.brain_age",
           "LinearProbe": "anatlearn.evaluate.probes", "load_linear_probe": "anatlearn.evaluate.saved_probes"}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'anatlearn.estimators' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = list(_PUBLIC)
