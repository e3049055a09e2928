"""The summary a reader needs first: headline table, key comparisons and a plain-words verdict.

All three are computed from the tidy results tables (``method, task, metric, mean, ...``; see
:mod:`anatlearn.evaluate.results`) and the paired tests of the downstream tasks, so the HTML report
(:mod:`anatlearn.report.page`) and the demo's Markdown summary say the same thing.

- *Headline table*: one row per method, one column per key metric: anatomy recovery R^2 per target family,
  RankMe, the primary metric of each downstream task (balanced accuracy for classification, R^2 for
  regression), brain-age MAE on the external site, site balanced accuracy and test-retest ICC.
- *Key comparisons*: each AnatCL variant (method name ``anatcl*``) minus each baseline (every other method
  except ceilings) on every key metric, with the corrected resampled t-test p value (Nadeau & Bengio 2003)
  where the downstream tasks provide one.
- *Verdict*: does an AnatCL variant beat random init on anatomy recovery, and how do the paired tests of
  the downstream tasks fall (significant for, against, neither at p < 0.05)?
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

ALPHA = 0.05
ANATCL_PREFIX = "anatcl"
RANDOM_INIT = "random-init"
CEILING_PREFIX = "ceiling:"
_FIXED = {("effective rank", "rankme"): "RankMe", ("brain_age", "mae_external"): "brain-age MAE ext",
          ("site", "balanced_accuracy_internal"): "site BAcc", ("test-retest", "ICC median"): "ICC"}


def key_metric_label(task: str, metric: str) -> str | None:
    """The headline column of a (task, metric) row, or None when it is not a key metric."""
    if task == "anatomy recovery" and metric.startswith("r2_"):
        return f"{metric[3:]} R²"
    if (task, metric) in _FIXED:
        return _FIXED[(task, metric)]
    if task in ("anatomy recovery", "effective rank", "brain_age", "site", "challenge", "test-retest"):
        return None
    if metric == "balanced_accuracy":
        return f"{task} BAcc"
    if metric == "r2":
        return f"{task} R²"
    return None


def order_methods(methods) -> list[str]:
    """AnatCL variants, other pretrained methods, random init, references, ceilings."""
    methods = list(dict.fromkeys(methods))

    def rank(m: str) -> int:
        if m.startswith(ANATCL_PREFIX):
            return 0
        if m.startswith(CEILING_PREFIX):
            return 4
        if m.startswith("reference:"):
            return 3
        return 2 if m == RANDOM_INIT else 1
    return sorted(methods, key=lambda m: (rank(m), methods.index(m)))


def headline(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, bool], dict[str, tuple[str, str]]]:
    """(methods x key metrics table of means, column -> lower_is_better, column -> (task, metric))."""
    cols: dict[str, tuple[str, str]] = {}
    lower: dict[str, bool] = {}
    for (task, metric), g in table.groupby(["task", "metric"], sort=False):
        label = key_metric_label(str(task), str(metric))
        if label is not None:
            cols[label] = (task, metric)
            lower[label] = bool(g["lower_is_better"].fillna(False).astype(bool).iloc[0])
    # order: anatomy recovery, RankMe, tasks, brain age, site, ICC
    priority = {"anatomy recovery": 0, "effective rank": 1, "brain_age": 3, "site": 4, "test-retest": 5}
    labels = sorted(cols, key=lambda c: (priority.get(cols[c][0], 2), list(cols).index(c)))
    methods = order_methods(table["method"])
    means = table.set_index(["method", "task", "metric"])["mean"]
    data = {c: [float(means.get((m, *cols[c]), np.nan)) for m in methods] for c in labels}
    out = pd.DataFrame(data, index=pd.Index(methods, name="method"))
    return out.dropna(how="all"), {c: lower[c] for c in labels}, {c: cols[c] for c in labels}


def _best(col: pd.Series, lower: bool) -> str | None:
    """Best method of a column among the non-ceiling methods."""
    col = col[[not m.startswith(CEILING_PREFIX) for m in col.index]].dropna()
    if col.empty:
        return None
    return str(col.idxmin() if lower else col.idxmax())


def _fmt(v: float) -> str:
    if v is None or not np.isfinite(v):
        return ""
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def headline_html(table: pd.DataFrame) -> str:
    """The headline table as HTML, the best non-ceiling value of each column in bold."""
    head, lower, _ = headline(table)
    if head.empty:
        return ""
    best = {c: _best(head[c], lower[c]) for c in head}
    th = "".join(f"<th>{html.escape(c)}{' ↓' if lower[c] else ''}</th>" for c in head)
    rows = []
    for m, r in head.iterrows():
        cells = "".join(f"<td>{'<b>' if best[c] == m else ''}{_fmt(r[c])}{'</b>' if best[c] == m else ''}</td>"
                        for c in head)
        rows.append(f"<tr><th class=m>{html.escape(str(m))}</th>{cells}</tr>")
    return f"<table class=headline><tr><th>method</th>{th}</tr>{''.join(rows)}</table>"


def headline_markdown(table: pd.DataFrame) -> str:
    """The headline table as a Markdown table (README style), best non-ceiling value in bold."""
    head, lower, _ = headline(table)
    if head.empty:
        return ""
    best = {c: _best(head[c], lower[c]) for c in head}
    lines = ["| method | " + " | ".join(c + (" ↓" if lower[c] else "") for c in head) + " |",
             "|---|" + "---:|" * len(head.columns)]
    for m, r in head.iterrows():
        cells = [f"**{_fmt(r[c])}**" if best[c] == m and _fmt(r[c]) else _fmt(r[c]) for c in head]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired_lookup(paired: pd.DataFrame | None, task: str, metric: str, a: str, b: str) -> float | None:
    if paired is None or paired.empty:
        return None
    p = paired[(paired["task"] == task) & (paired["metric"] == metric)]
    hit = p[((p["method_a"] == a) & (p["method_b"] == b)) | ((p["method_a"] == b) & (p["method_b"] == a))]
    if hit.empty:
        return None
    value = float(hit["p_corrected_t"].iloc[0])
    return value if math.isfinite(value) else None


def key_comparisons(table: pd.DataFrame, paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy rows ``variant, baseline, column, diff (variant - baseline), better (bool), p`` for every AnatCL
    variant against every non-ceiling baseline on every key metric."""
    head, lower, where = headline(table)
    methods = list(head.index)
    variants = [m for m in methods if m.startswith(ANATCL_PREFIX)]
    baselines = [m for m in methods if not m.startswith(ANATCL_PREFIX) and not m.startswith(CEILING_PREFIX)]
    rows = []
    for a in variants:
        for b in baselines:
            for c in head.columns:
                va, vb = head.at[a, c], head.at[b, c]
                if not (np.isfinite(va) and np.isfinite(vb)):
                    continue
                diff = float(va - vb)
                rows.append({"variant": a, "baseline": b, "column": c, "diff": diff,
                             "better": bool(diff < 0) if lower[c] else bool(diff > 0),
                             "p": _paired_lookup(paired, *where[c], a, b)})
    return pd.DataFrame(rows, columns=["variant", "baseline", "column", "diff", "better", "p"])


def _p_text(p: float) -> str:
    txt = "p&lt;0.001" if p < 0.001 else f"p={p:.2g}"
    return f"<br><small>{'<b>' + txt + '</b>' if p < ALPHA else txt}</small>"


def comparisons_html(comp: pd.DataFrame) -> str:
    """Key comparisons, one table per AnatCL variant: rows key metrics, columns baselines, cells the
    difference (variant - baseline), green where AnatCL is better, red where worse, the paired test's p
    below it (bold when p < 0.05)."""
    if comp.empty:
        return ""
    out = []
    for a, g in comp.groupby("variant", sort=False):
        baselines = list(dict.fromkeys(g["baseline"]))
        th = "".join(f"<th>{html.escape(b)}</th>" for b in baselines)
        rows = []
        for c, gc in g.groupby("column", sort=False):
            by = gc.set_index("baseline")
            cells = []
            for b in baselines:
                if b not in by.index:
                    cells.append("<td></td>")
                    continue
                r = by.loc[b]
                cls = "" if r["diff"] == 0 else " class=better" if r["better"] else " class=worse"
                ptxt = "" if r["p"] is None or pd.isna(r["p"]) else _p_text(r["p"])
                cells.append(f"<td{cls}>{r['diff']:+.3f}{ptxt}</td>")
            rows.append(f"<tr><th class=m>{html.escape(str(c))}</th>{''.join(cells)}</tr>")
        out.append(f"<div class=scroll><table class=comparisons><tr><th class=m>{html.escape(a)} minus</th>{th}</tr>"
                   f"{''.join(rows)}</table></div>")
    return "".join(out)


def verdict(table: pd.DataFrame, paired: pd.DataFrame | None = None, note: str = "") -> list[str]:
    """Plain-words verdict sentences (plain text) computed from the results."""
    head, lower, where = headline(table)
    if head.empty:
        return []
    variants = [m for m in head.index if m.startswith(ANATCL_PREFIX)]
    out = []
    r2_cols = [c for c in head.columns if where[c][0] == "anatomy recovery"]
    if r2_cols:
        c = r2_cols[0]
        vals = head[c].dropna()
        listing = ", ".join(f"{m} {vals[m]:.3f}" for m in vals.index if not m.startswith(CEILING_PREFIX))
        if variants and RANDOM_INIT in vals.index:
            above = [v for v in variants if v in vals.index and vals[v] > vals[RANDOM_INIT]]
            lead = (f"{len(above)} of {len(variants)} AnatCL variants recover more of the regional anatomy "
                    f"than random init" if above else "No AnatCL variant recovers more of the regional anatomy "
                    "than random init")
            out.append(f"Anatomy recovery ({c}, cross-validated ridge): {lead} ({listing}).")
        else:
            out.append(f"Anatomy recovery ({c}, cross-validated ridge): {listing}.")
    comp = key_comparisons(table, paired)
    tested = comp[comp["p"].notna()] if not comp.empty else comp
    if variants and len(tested):
        sig = tested[tested["p"] < ALPHA]
        n_for, n_against = int(sig["better"].sum()), int((~sig["better"].astype(bool)).sum())
        n_tasks = tested["column"].nunique()
        out.append(f"Downstream tasks ({n_tasks} key metrics, {len(tested)} paired comparisons of an AnatCL variant "
                   f"with a baseline, corrected resampled t-test at p < {ALPHA}): {n_for} significantly favour AnatCL, "
                   f"{n_against} favour the baseline, {len(tested) - n_for - n_against} show no significant "
                   f"difference.")
        for b in dict.fromkeys(tested["baseline"]):
            g = tested[tested["baseline"] == b]
            wins = [f"{r.variant} on {r.column}" for r in g.itertuples() if r.p < ALPHA and r.better]
            losses = [f"{r.variant} on {r.column}" for r in g.itertuples() if r.p < ALPHA and not r.better]
            if wins or losses:
                out.append(f"Against {b}: better: {', '.join(wins) or 'none'}; worse: {', '.join(losses) or 'none'}.")
    elif not variants:
        best = {c: _best(head[c], lower[c]) for c in head}
        out.append("Best method per key metric: " + "; ".join(f"{c}: {m}" for c, m in best.items() if m) + ".")
    if note:
        out.append(note)
    return out
