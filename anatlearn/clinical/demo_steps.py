"""The demo's clinical part: brain age, harmonisation and one region map from the demo's own features,
kept to a few tens of seconds (the demo's budget) by reusing its embeddings and attributing few subjects."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from anatlearn.clinical.run import run_brain_age, run_explain, run_harmonize
from anatlearn.errors import DataError
from anatlearn.io import atomic_write_text


def run_clinical_demo(out, weights, downstream_dir, healthy_features: pd.DataFrame, downstream_features: pd.DataFrame,
                      p_healthy: pd.DataFrame, p_down: pd.DataFrame, seed: int = 0, quick: bool = False) -> Path:
    """Write OUT/brain-age, OUT/harmonize and OUT/explain (AD-like task) for one model; returns OUT.

    A step whose tool refuses the features with a DataError is skipped; its reason goes to OUT/skipped.json.
    Brain age: fitted on the whole healthy cohort (cross-validated there), applied to the downstream cohort,
    patients vs controls by diagnosis. ComBat: fitted on the healthy cohort preserving age and sex, applied to
    the downstream cohort (same sites). Region map: the AD-like probe, integrated gradients on a few subjects.
    """
    out = Path(out)
    steps = {
        "brain-age": lambda: run_brain_age(out / "brain-age", downstream_features, p_down, reference=healthy_features,
                                           reference_participants=p_healthy, group_column="diagnosis", control="CN",
                                           seed=seed),
        "harmonize": lambda: run_harmonize(out / "harmonize", downstream_features, p_down, reference=healthy_features,
                                           reference_participants=p_healthy, covariates=["age", "sex"],
                                           check_folds=2 if quick else 5, seed=seed),
        "explain": lambda: run_explain(out / "explain", weights, downstream_dir, "AD-like-vs-CN",
                                       features=downstream_features, explain=2 if quick else 4,
                                       n_steps=4 if quick else 8, seed=seed),
    }
    skipped = {}
    for name, step in steps.items():
        # A tool that refuses these features (e.g. brain age on a 1-epoch encoder whose predictions do not follow
        # age) is the tool working as documented; the demo records why and goes on to its report.
        try:
            step()
        except DataError as exc:
            skipped[name] = str(exc)
            print(f"[demo] clinical: {name} skipped: {exc}", file=sys.stderr, flush=True)
    if skipped:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "skipped.json", json.dumps(skipped, indent=1))
    return out
