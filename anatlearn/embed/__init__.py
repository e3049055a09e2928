"""Frozen-encoder features (``anatlearn embed``).

:mod:`anatlearn.embed.encoder` turns volumes into a feature table (:class:`AnatEncoder`, :func:`embed`);
:mod:`anatlearn.embed.sharding` cuts a dataset into resumable chunks, shares them between torchrun
processes and merges them into one table (:func:`embed_dataset`, :func:`embed_in_parts`).

The public names are imported on first use (PEP 562 ``__getattr__``) so that the command line can read
:data:`DEFAULT_CHUNK` at start-up without importing torch.
"""

from __future__ import annotations

from anatlearn import lazy_exports

DEFAULT_CHUNK = 64  # subjects per part file: a killed run redoes at most one chunk per process (docs/scale.md)

_PUBLIC = {
    "AnatEncoder": "encoder", "DTYPES": "encoder", "compare_to_fp32": "encoder", "embed": "encoder",
    "max_abs_difference": "encoder",
    "ChunkPlan": "sharding", "PartsResult": "sharding", "embed_dataset": "sharding", "embed_in_parts": "sharding",
    "merge_parts": "sharding", "parts_dir": "sharding",
}

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = ["DEFAULT_CHUNK", *_PUBLIC]
