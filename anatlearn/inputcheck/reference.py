"""Which fingerprint a checkpoint's inputs are checked against, and the check's record for outputs.

* an anatlearn checkpoint written by ``pretrain`` carries its own (``input_fingerprint``), and so does the
  ``config.json`` of a folder written by ``export``;
* the released AnatCL weights (and folders exported from them) are checked against the approximate CAT12
  VBM reference shipped with anatlearn (``released_vbm.json``, made by studies/make_released_reference.py;
  docs/evaluation.md says how and how far to trust it);
* an anatlearn checkpoint written before fingerprints existed has none: the check is skipped with a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from anatlearn.errors import DataError

KEY = "input_fingerprint"
RELEASED_FILE = "released_vbm.json"
RELEASED_NAME = "anatcl-released-vbm"  # how an exported config.json names it (anatlearn.models.card)


@dataclass
class Reference:
    """The fingerprint to check against (None: skip, ``note`` says why) and what it is, in words."""

    fingerprint: dict | None
    description: str
    note: str = ""
    results: pd.DataFrame | None = field(default=None, repr=False)


def released_reference() -> dict:
    """The approximate fingerprint of CAT12 VBM maps on the 1.5 mm MNI grid (package data)."""
    text = resources.files("anatlearn.inputcheck").joinpath(RELEASED_FILE).read_text()
    return json.loads(text)


def reference_from_meta(meta: dict | None, source: str) -> Reference:
    """The reference of a loaded model's ``checkpoint_meta`` (:func:`anatlearn.models.load_pretrained`)."""
    meta = dict(meta or {})
    name = Path(str(source)).name or str(source)
    if meta.get("format") == "anatlearn-hub":
        meta = dict(meta.get("hub_config") or {})
        if isinstance(meta.get(KEY), dict):
            return Reference(meta[KEY], f"the training maps' fingerprint in {name}/config.json")
        if meta.get(KEY) == RELEASED_NAME or meta.get("released"):
            return Reference(released_reference(), "the approximate CAT12 VBM reference of the released weights")
        return Reference(None, name, f"{name}/config.json has no fingerprint of the training maps "
                                     "(exported by an older anatlearn); input check skipped")
    if isinstance(meta.get(KEY), dict):
        return Reference(meta[KEY], f"the training maps' fingerprint stored in {name}")
    if meta.get("format") == "anatlearn":
        return Reference(None, name, f"checkpoint {name} has no fingerprint of its training maps (written by an "
                                     "older anatlearn); input check skipped")
    return Reference(released_reference(), "the approximate CAT12 VBM reference of the released weights")


def reference_for_weights(weights, model: str = "resnet18", width: float = 1.0) -> Reference:
    """The reference of ``--weights`` (any form :func:`anatlearn.models.load_pretrained` accepts)."""
    from anatlearn.models import load_pretrained

    net = load_pretrained(weights, default_model=model, default_width=width)
    return reference_from_meta(getattr(net, "checkpoint_meta", {}), str(weights))


def run_check(dataset, ref: Reference) -> Reference:
    """Check every map of ``dataset`` against ``ref`` (results in ``ref.results``; skipped with a note when
    ``ref`` has no fingerprint or the grids differ)."""
    from anatlearn.inputcheck.check import check_dataset, grid_problem

    if ref.fingerprint is None:
        return ref
    shape = getattr(dataset, "shape", None) or dataset.volume(0).shape
    problem = grid_problem(shape, ref.fingerprint)
    if problem:
        ref.note = f"input check skipped: {problem}"
        return ref
    ref.results = check_dataset(dataset, ref.fingerprint)
    return ref


def summary(ref: Reference, see: str = "") -> dict:
    """The record written into an output's metadata under ``input_check``."""
    if ref.results is None:
        return {"n_subjects": None, "n_flagged": None, "flagged": [], "reasons": {}, "reference": ref.description,
                "skipped": ref.note}
    bad = ref.results[~ref.results["ok"]]
    return {"n_subjects": int(len(ref.results)), "n_flagged": int(len(bad)),
            "flagged": [str(p) for p in bad["participant_id"]],
            "reasons": dict(zip(bad["participant_id"].astype(str), bad["reasons"])),
            "reference": ref.description, "skipped": None, **({"see": see} if see else {})}


def summary_line(ref: Reference, see: str) -> str:
    """One line for the terminal: how many subjects look unlike the training maps (or why none was checked)."""
    if ref.results is None:
        return ref.note
    n, bad = len(ref.results), int((~ref.results["ok"]).sum())
    if not bad:
        return f"all {n} subjects look like the training maps ({ref.description})"
    verb = "looks" if bad == 1 else "look"
    return f"{bad} of {n} subjects {verb} unlike the training maps; see {see}"


def strict_error(ref: Reference, what: str) -> DataError:
    """The error of ``--strict`` when some subject was flagged."""
    bad = ref.results[~ref.results["ok"]]
    first = bad.iloc[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return DataError(f"input check (strict): subject {first['participant_id']} of {what} looks unlike the training "
                     f"maps: {first['reasons']}{more}")


def check_maps(volumes: dict, ref: Reference) -> dict[str, dict]:
    """key -> {"ok", "reasons", "reference"} for in-memory maps (the BIDS App's prepared scans); every key
    gets ``{"ok": None, "skipped": note}`` when ``ref`` has no fingerprint or the grid differs."""
    from anatlearn.inputcheck.check import check_volume, grid_problem

    out = {}
    for key, vol in volumes.items():
        problem = None if ref.fingerprint is None else grid_problem(vol.shape, ref.fingerprint)
        if ref.fingerprint is None or problem:
            out[key] = {"ok": None, "skipped": ref.note or f"input check skipped: {problem}"}
            continue
        reasons = check_volume(vol, ref.fingerprint)[1]
        out[key] = {"ok": not reasons, "reasons": reasons, "reference": ref.description}
    return out
