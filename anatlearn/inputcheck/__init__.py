"""Input check: are a user's maps like the maps the weights were trained on? (``anatlearn check``; the same
check runs inside ``embed``, ``bids``, ``finetune`` and ``predict``; docs/evaluation.md).

:mod:`~anatlearn.inputcheck.fingerprint` summarises training maps into a small JSON fingerprint (stored in
checkpoints and exported folders); :mod:`~anatlearn.inputcheck.check` flags maps outside its ranges, with
reasons in words; :mod:`~anatlearn.inputcheck.reference` picks the fingerprint of a checkpoint (its own, or
the shipped approximate reference of the released AnatCL weights) and records the result in outputs.
"""

from anatlearn.inputcheck.check import InMemoryMaps, check_dataset, check_volume
from anatlearn.inputcheck.fingerprint import build_fingerprint
from anatlearn.inputcheck.reference import (KEY, Reference, check_maps, reference_for_weights, reference_from_meta, run_check,
                                            strict_error, summary, summary_line)

__all__ = ["KEY", "InMemoryMaps", "Reference", "build_fingerprint", "check_maps", "check_dataset", "check_volume",
           "reference_for_weights", "reference_from_meta", "run_check", "strict_error", "summary", "summary_line"]
