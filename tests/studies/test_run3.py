"""studies/run3.py: run 3's pre-registered readings (docs/study.md, Part 6) on hand-made units whose calls
are known: the best-variant choice, the four claims of (A), and the recommendation rule of (B)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from studies import run3

GMV, AD = "anat_r2_GMV", "AD-like-vs-CN balanced_accuracy"
SEEDS = (6, 7, 8)


def units(values: dict, val: dict | None = None) -> pd.DataFrame:
    """``values[name] = (gmv by seed, ad by seed)`` at 100 epochs; validation GMV at 30 from ``val``."""
    rows = []
    for name, (gmv, ad) in values.items():
        budget = 0 if name == "random-init" else 100
        rows += [{"name": name, "seed": s, "budget": budget, GMV: g, AD: a, "val_anat_r2_GMV": np.nan}
                 for s, g, a in zip(SEEDS, gmv, ad)]
        if name != "random-init":
            v = (val or {}).get(name, 0.5)
            rows += [{"name": name, "seed": s, "budget": 30, GMV: 0.0, AD: 0.0, "val_anat_r2_GMV": v}
                     for s in SEEDS]
    return pd.DataFrame(rows)


BASE = [0.70, 0.71, 0.72]
UP = [0.75, 0.77, 0.76]  # +0.05 on every seed, sd 0.01: called
LEVEL = [0.72, 0.70, 0.73]  # +0.007, one seed negative: not called
DOWN = [0.60, 0.62, 0.61]


def test_a_reading_and_claim_follow_the_rule():
    u = units({"yaware": (BASE, BASE), "anatcl-global": (UP, UP), "anatcl-local": (LEVEL, UP),
               "descriptor-regression": (BASE, BASE), "anatcl-regression": (BASE, BASE), "random-init": (BASE, BASE)})
    rows = run3.readings_a(u)
    got = {(r["a"], r["metric"]): r["reading"] for r in rows}
    assert got == {("anatcl-global", GMV): "ahead", ("anatcl-global", AD): "ahead",
                   ("anatcl-local", GMV): "level", ("anatcl-local", AD): "ahead"}
    r = rows[0]
    d = np.array(UP) - np.array(BASE)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    assert r["diff"] == pytest.approx(0.05) and r["p"] == pytest.approx(2 * sps.t.sf(t, 2))
    assert run3.claim_a(rows) == "confirmed"  # one variant ahead on both metrics, none behind
    rows[1]["reading"] = "level"
    assert run3.claim_a(rows) == "partly supported"
    assert run3.claim_a([{**x, "reading": "level"} for x in rows]) == "not confirmed"
    rows[2]["reading"] = "behind"  # any behind contradicts, whatever else is ahead
    assert run3.claim_a(rows) == "contradicted"
    assert run3.claim_a(run3.readings_a(u[u["name"] != "yaware"])) == "not yet decidable"


def test_best_variant_reads_validation_at_30_epochs_with_ties_to_global():
    vals = {"yaware": (BASE, BASE), "anatcl-global": (UP, UP), "anatcl-local": (DOWN, DOWN)}
    assert run3.best_anatcl(units(vals, {"anatcl-global": 0.6, "anatcl-local": 0.7}))[0] == "anatcl-local"
    assert run3.best_anatcl(units(vals, {"anatcl-global": 0.7, "anatcl-local": 0.7}))[0] == "anatcl-global"


def test_recommendation_rule():
    # descriptor-regression: ahead of the best AnatCL on GMV, behind nothing -> qualifies;
    # anatcl-regression: ahead on GMV but behind random init on AD-like -> does not
    u = units({"yaware": (BASE, BASE), "anatcl-global": (BASE, BASE), "anatcl-local": (BASE, BASE),
               "descriptor-regression": (UP, LEVEL), "anatcl-regression": (UP, DOWN), "random-init": (BASE, BASE)})
    rows = run3.readings_b(u, "anatcl-global")
    assert len(rows) == 8
    rec, q = run3.recommendation(u, rows)
    assert q == {"descriptor-regression": True, "anatcl-regression": False} and rec == "descriptor-regression"
    # both qualify with as many calls ahead: the higher mean GMV at 100 epochs wins
    higher = [x + 0.01 for x in UP]
    u2 = units({"yaware": (BASE, BASE), "anatcl-global": (BASE, BASE), "anatcl-local": (BASE, BASE),
                "descriptor-regression": (UP, LEVEL), "anatcl-regression": (higher, LEVEL), "random-init": (BASE, BASE)})
    assert run3.recommendation(u2, run3.readings_b(u2, "anatcl-global"))[0] == "anatcl-regression"
    # neither ahead of the best AnatCL variant: nothing is recommended
    u3 = units({"yaware": (BASE, BASE), "anatcl-global": (UP, UP), "anatcl-local": (BASE, BASE),
                "descriptor-regression": (UP, UP), "anatcl-regression": (LEVEL, BASE), "random-init": (BASE, BASE)})
    assert run3.recommendation(u3, run3.readings_b(u3, "anatcl-global")) == (
        None, {"descriptor-regression": False, "anatcl-regression": False})


def test_report_names_every_reading_and_its_expectation():
    top = [0.80, 0.82, 0.81]
    u = units({"yaware": (BASE, BASE), "anatcl-global": (LEVEL, UP), "anatcl-local": (LEVEL, LEVEL),
               "descriptor-regression": (top, LEVEL), "anatcl-regression": (top, LEVEL), "random-init": (BASE, BASE)})
    text = run3.report(u)
    assert "claim **partly supported**" in text
    assert "| anatcl-global | yaware | AD-like-vs-CN balanced_accuracy | 0.760 | 0.710 | +0.050 |" in text
    assert text.count("| as expected (ahead) |") == 4  # GMV of both new methods against both references
    assert "-> **descriptor-regression**" in text  # both qualify, one call each: tie on GMV -> the first
