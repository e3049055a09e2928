"""The BIDS App (``anatlearn bids BIDS_DIR OUTPUT_DIR participant|group``; Gorgolewski et al. 2017, PLoS
Comput Biol 13:e1005209): the participant level prepares and embeds each selected T1w scan into
BIDS-Derivatives (:mod:`anatlearn.bids.participant`), the group level gathers one feature table, the QC
summary and a QC page (:mod:`anatlearn.bids.group`). See docs/bids.md."""

from __future__ import annotations


def run_participant(*args, **kwargs):
    from anatlearn.bids.participant import run_participant as _run

    return _run(*args, **kwargs)


def run_group(*args, **kwargs):
    from anatlearn.bids.group import run_group as _run

    return _run(*args, **kwargs)


run_participant.__doc__ = "See :func:`anatlearn.bids.participant.run_participant`."
run_group.__doc__ = "See :func:`anatlearn.bids.group.run_group`."

__all__ = ["run_group", "run_participant"]
