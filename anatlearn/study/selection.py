"""The pre-registered selection rule (docs/study.md) and the positive-control criterion.

Selection: for each method with ablation variants, the configuration with the highest mean over seeds of
``val_anat_r2_GMV`` (GMV anatomy-recovery R^2 on the *healthy validation* cohort) at the selection budget;
ties go to the base. No downstream test metric is read. A selected variant that is not the base is resumed
to the largest main budget.

Positive control: at the selection budget, ``gmv-regression`` minus ``random-init`` on the downstream GMV
recovery R^2 (seed s against seed s) must be at least ``control_margin`` in the mean with every seed's
difference positive.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from anatlearn.io import atomic_write_text
from anatlearn.study.grid import BASE, CONTROL, RANDOM_INIT, StudySettings
from anatlearn.study.units import load_units

SELECTION_METRIC = "val_anat_r2_GMV"
CONTROL_METRIC = "anat_r2_GMV"


def select_configurations(units: pd.DataFrame, s: StudySettings) -> dict:
    """``{method: {"selected": name, "scores": {name: mean}, "n_seeds": {name: n}}}`` for every method
    with ablation variants, from the unit table of :func:`anatlearn.study.units.load_units`."""
    methods = sorted({m for m, _ in s.ablations})
    out = {}
    at = units[units["budget"] == s.selection_budget]
    for method in methods:
        rows = at[at["method"] == method]
        if rows.empty:
            continue
        scores = rows.groupby("name")[SELECTION_METRIC].mean()
        counts = rows.groupby("name")[SELECTION_METRIC].count()
        best = scores.max()
        # ties (equal means) go to the base configuration, then to the alphabetically first name
        tied = sorted(scores[scores == best].index, key=lambda n: (n != method, n))
        out[method] = {"selected": tied[0], "metric": SELECTION_METRIC, "budget": s.selection_budget,
                       "scores": {k: float(v) for k, v in scores.items()},
                       "n_seeds": {k: int(v) for k, v in counts.items()}}
    return out


def positive_control(units: pd.DataFrame, s: StudySettings) -> dict | None:
    """The control's verdict (None when the grid has no control or it is not evaluated yet)."""
    ctrl = units[(units["method"] == CONTROL) & (units["budget"] == s.selection_budget)]
    rand = units[units["method"] == RANDOM_INIT]
    if ctrl.empty or rand.empty:
        return None
    a = ctrl.set_index("seed")[CONTROL_METRIC]
    b = rand.set_index("seed")[CONTROL_METRIC]
    seeds = sorted(set(a.index) & set(b.index))
    diff = a.loc[seeds] - b.loc[seeds]
    passed = bool(len(seeds) > 0 and diff.mean() >= s.control_margin and (diff > 0).all())
    return {"metric": CONTROL_METRIC, "budget": s.selection_budget, "margin": s.control_margin,
            "control_mean": float(a.loc[seeds].mean()), "random_init_mean": float(b.loc[seeds].mean()),
            "differences": {int(k): float(v) for k, v in diff.items()}, "mean_difference": float(diff.mean()),
            "passed": passed}


def chosen_variants(selection: dict) -> set[str]:
    """The selected configurations that are not a base (an ablation's name has a "+")."""
    return {v["selected"] for v in selection.values() if "+" in v["selected"]}


def extend_selected(out: Path, s: StudySettings, cells) -> list:
    """Cells of selected non-base variants with the largest main budget added (writes ``selection.json``)."""
    units = load_units(out)
    if units.empty:
        return []
    selection = select_configurations(units, s)
    atomic_write_text(Path(out) / "selection.json", json.dumps(selection, indent=1))
    chosen = chosen_variants(selection)
    full = max(s.budgets)
    return [c.with_budgets((*c.budgets, full)) for c in cells
            if c.variant != BASE and c.name in chosen and full not in c.budgets]
