"""Verdict, headline table and key comparisons computed from hand-made results tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from anatlearn.report.summary import (headline, headline_html, headline_markdown, headline_text, key_comparisons,
                                      order_methods, verdict)


def _rows(task, metric, values, lower=False):
    return [{"method": m, "task": task, "metric": metric, "mean": v, "ci_low": np.nan, "ci_high": np.nan, "n": 100,
             "lower_is_better": lower} for m, v in values.items()]


def _table():
    return pd.DataFrame(
        _rows("anatomy recovery", "r2_GMV", {"anatcl-global": 0.80, "yaware": 0.85, "random-init": 0.90,
                                             "reference: pooled voxels": 0.95, "ceiling: true latents": 0.99})
        + _rows("effective rank", "rankme", {"anatcl-global": 20.0, "yaware": 10.0, "random-init": 30.0})
        + _rows("effective rank", "rankme_centred", {"anatcl-global": 40.0, "yaware": 30.0, "random-init": 50.0})
        + _rows("AD-vs-CN", "balanced_accuracy", {"anatcl-global": 0.75, "yaware": 0.70, "random-init": 0.72})
        + _rows("AD-vs-CN", "roc_auc", {"anatcl-global": 0.8, "yaware": 0.7, "random-init": 0.7})
        + _rows("brain_age", "mae_external", {"anatcl-global": 6.0, "yaware": 5.0, "random-init": 7.0}, lower=True)
        + _rows("brain_age", "mae_internal", {"anatcl-global": 5.0, "yaware": 4.0, "random-init": 6.0}, lower=True))


def test_text_headline_fits_the_width_and_marks_the_same_best_cells_as_the_markdown():
    table = _table()
    text = headline_text(table, {"reference: pooled voxels": "voxels (ref.)"}, width=60)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 60
    rows = {line.split("  ")[0].strip(): line.split()[-5:] for line in lines if line[:1].isalpha() and "metric" not in line}
    assert rows["GMV R²"] == ["0.800", "0.850", "0.900", "0.950*", "0.990"]
    assert rows["brain-age MAE ext ↓"][-3:] == ["6.000", "5.000*", "7.000"]  # no voxels or ceiling value
    assert "voxels" in text and "reference:" not in text and "anatcl-" in text  # renamed, wrapped at the hyphen
    with pytest.raises(ValueError, match="do not fit 30 columns"):
        headline_text(table, width=30)


def _paired():
    # stored in the order the evaluation wrote it: yaware first, so the lookup must flip the pair
    return pd.DataFrame([{"task": "AD-vs-CN", "metric": "balanced_accuracy", "method_a": "yaware",
                          "method_b": "anatcl-global", "mean_diff": -0.05, "t": -3.0, "p_corrected_t": 0.01,
                          "p_wilcoxon": 0.06, "n_folds": 25},
                         {"task": "AD-vs-CN", "metric": "balanced_accuracy", "method_a": "anatcl-global",
                          "method_b": "random-init", "mean_diff": 0.03, "t": 1.0, "p_corrected_t": 0.3,
                          "p_wilcoxon": 0.4, "n_folds": 25}])


def test_headline_picks_key_metrics_in_order():
    head, lower, where = headline(_table())
    assert list(head.columns) == ["GMV R²", "RankMe", "AD-vs-CN BAcc", "brain-age MAE ext"]
    assert lower == {"GMV R²": False, "RankMe": False, "AD-vs-CN BAcc": False, "brain-age MAE ext": True}
    assert list(head.index) == ["anatcl-global", "yaware", "random-init", "reference: pooled voxels",
                                "ceiling: true latents"]
    assert head.at["yaware", "brain-age MAE ext"] == 5.0 and where["RankMe"] == ("effective rank", "rankme")


def _md_rows(md: str) -> dict[str, list[str]]:
    """Markdown table -> {first cell: [cells...]} (cells stripped)."""
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in md.splitlines())}


def test_markdown_rows_are_key_metrics_and_bold_the_best_non_ceiling_value_of_each_row():
    md = headline_markdown(_table())
    rows = _md_rows(md)
    assert rows["key metric"] == ["key metric", "anatcl-global", "yaware", "random-init", "reference: pooled voxels",
                                  "ceiling: true latents"]
    assert rows["GMV R²"][1:] == ["0.800", "0.850", "0.900", "**0.950**", "0.990"]  # the ceiling (0.99) is not best
    assert rows["brain-age MAE ext ↓"][1:4] == ["6.000", "**5.000**", "7.000"]  # lower is better
    assert rows["RankMe"][1:4] == ["20.0", "10.0", "**30.0**"]
    assert md.count("**") == 2 * 4  # exactly one bold cell per row (no ties here)


def test_ties_are_all_bold_and_sources_and_below_chance_marks_are_shown():
    table = _table()
    table.loc[table.metric == "balanced_accuracy", "mean"] = [0.75, 0.75, 0.30]
    where = {("AD-vs-CN", "balanced_accuracy"): "downstream tasks (adni), adni cohort, 5 x 5-fold CV, n = 80"}
    flags = {("random-init", "AD-vs-CN", "balanced_accuracy"): 0.5}
    md = headline_markdown(table, where, flags)
    rows = _md_rows(md)
    assert rows["key metric"][-1] == "source"
    assert rows["AD-vs-CN BAcc"][1:] == ["**0.750**", "**0.750**", "0.300†", "", "",
                                         "downstream tasks (adni), adni cohort, 5 x 5-fold CV, n = 80"]
    assert rows["GMV R²"][-1] == ""  # no source given for it: an empty cell, not a guess
    page = headline_html(table, where, flags)
    assert page.count("<b>") == 5  # GMV, RankMe, two tied BAcc, MAE
    assert "<td>0.300†</td>" in page and "n = 80</td>" in page


def test_key_comparisons_signs_and_paired_p():
    comp = key_comparisons(_table(), _paired()).set_index(["baseline", "column"])
    assert abs(comp.loc[("yaware", "AD-vs-CN BAcc"), "diff"] - 0.05) < 1e-12
    assert comp.loc[("yaware", "AD-vs-CN BAcc"), "p"] == 0.01  # found although stored as (yaware, anatcl-global)
    assert not comp.loc[("yaware", "brain-age MAE ext"), "better"]  # 6 > 5: AnatCL worse
    assert comp.loc[("random-init", "brain-age MAE ext"), "better"]  # 6 < 7: lower is better
    assert pd.isna(comp.loc[("random-init", "GMV R²"), "p"])  # no paired test for anatomy recovery
    assert "ceiling: true latents" not in set(comp.index.get_level_values(0))


def test_verdict_states_the_measured_outcome():
    lines = verdict(_table(), _paired(), note="one seed")
    assert lines[0].startswith("Anatomy recovery (GMV R²")
    assert "No AnatCL variant recovers more of the regional anatomy than random init" in lines[0]
    assert "anatcl-global 0.800" in lines[0] and "random-init 0.900" in lines[0]
    assert "2 paired comparisons" in lines[1] and "1 significantly favour AnatCL, 0 favour the baseline, 1 show" in lines[1]
    assert "Against yaware: better: anatcl-global on AD-vs-CN BAcc" in lines[2]
    assert lines[-1] == "one seed"
    better = _table()
    better.loc[(better.metric == "r2_GMV") & (better.method == "anatcl-global"), "mean"] = 0.93
    assert "1 of 1 AnatCL variants recover more" in verdict(better)[0]


def test_order_methods():
    assert order_methods(["ceiling: x", "random-init", "yaware", "reference: v", "anatcl-local"]) == \
        ["anatcl-local", "yaware", "random-init", "reference: v", "ceiling: x"]
