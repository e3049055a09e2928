"""The summary a reader needs first: headline table, key comparisons and a plain-words verdict.

All three are computed from the tidy results tables (``method, task, metric, mean, ...``; see
:mod:`anatlearn.evaluate.results`) and the paired tests of the downstream tasks, so the HTML report
(:mod:`anatlearn.report.page`) and the demo's Markdown summary say the same thing.

- *Headline table*: one row per key metric, one column per method: anatomy recovery R^2 per target family,
  RankMe, the primary metric of each downstream task (balanced accuracy for classification, R^2 for
  regression), brain-age MAE on the external site, site balanced accuracy and test-retest ICC; each row
  names its source (evaluation, cohort, n: :mod:`anatlearn.report.sources`), since the rows come from
  different cohorts.
- *Key comparisons*: each AnatCL variant (method name ``anatcl*``) minus each baseline (every other method
  except ceilings) on every key metric, with the corrected resampled t-test p value (Nadeau & Bengio 2003)
  where the downstream tasks provide one.
- *Verdict*: is every downstream task at chance (said first, with the ceiling of a synthetic cohort)? Does an
  AnatCL variant beat the baseline (random init, else the best other method) on anatomy recovery, how do
  the paired tests of the downstream tasks fall (significant for, against, neither at p < 0.05), and was a
  baseline given at all?
"""

from __future__ import annotations

import html
import math
from typing import Mapping

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
        return f"{'latent factors' if metric == 'r2_latents' else metric[3:]} R²"
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


def _best(col: pd.Series, lower: bool) -> list[str]:
    """Best methods of a column among the methods other than ceilings (every method tied at the shown
    precision); none where fewer than two such methods have a value."""
    col = col[[not m.startswith(CEILING_PREFIX) for m in col.index]].dropna()
    if len(col) < 2:  # nothing to compare with: no best
        return []
    top = col.min() if lower else col.max()
    return [str(m) for m, v in col.items() if _fmt(v) == _fmt(top)]


def _fmt(v: float) -> str:
    if v is None or not np.isfinite(v):
        return ""
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


Flags = Mapping[tuple[str, str, str], float]  # (method, task, metric) -> chance, for values below chance


Levels = Mapping[tuple[str, str], tuple]  # (task, metric) -> (level or None, words): anatlearn.report.levels


def _rows(table: pd.DataFrame, sources: Mapping[tuple[str, str], str] | None, flags: Flags | None,
          levels: Levels | None = None):
    """(label, lower, {method: (text, bold, below chance)}, source, level words) per key metric, methods in
    headline order."""
    head, lower, where = headline(table)
    for c in head.columns:
        best = _best(head[c], lower[c])
        cells = {m: (_fmt(v), m in best and bool(_fmt(v)), (m, *where[c]) in (flags or {}))
                 for m, v in head[c].items()}
        yield c, lower[c], cells, (sources or {}).get(where[c], ""), ((levels or {}).get(where[c]) or (None, ""))[1]


def headline_html(table: pd.DataFrame, sources: Mapping[tuple[str, str], str] | None = None,
                  flags: Flags | None = None, levels: Levels | None = None) -> str:
    """The headline table as HTML: one row per key metric, one column per method, the best value of each row
    in bold (every tie; ceilings excluded; only where two or more methods compare), values below chance
    marked †, each row's chance or trivial level (``levels``, a column when given) and where it comes from
    (``sources``: (task, metric) -> evaluation, cohort, n)."""
    head, _, _ = headline(table)
    if head.empty:
        return ""
    th = "".join(f"<th>{html.escape(str(m))}</th>" for m in head.index)
    th += "<th class=level>chance or trivial level</th>" if levels is not None else ""
    rows = []
    for label, lower, cells, source, level in _rows(table, sources, flags, levels):
        tds = "".join(f"<td{' class=best' if bold else ''}>{'<b>' if bold else ''}{text}{'</b>' if bold else ''}"
                      f"{'†' if below else ''}</td>" for text, bold, below in cells.values())
        tds += f"<td class=level>{html.escape(level)}</td>" if levels is not None else ""
        rows.append(f"<tr><th class=m>{html.escape(label)}{' ↓' if lower else ''}</th>{tds}"
                    f"<td class=source>{html.escape(source)}</td></tr>")
    return (f"<div class=scroll><table class=headline><tr><th class=m>key metric</th>{th}<th class=source>source "
            f"(evaluation, cohort, n)</th></tr>{''.join(rows)}</table></div>")


def headline_markdown(table: pd.DataFrame, sources: Mapping[tuple[str, str], str] | None = None,
                      flags: Flags | None = None) -> str:
    """The headline table as Markdown (README style): key metrics as rows, methods as columns, the best
    value of each row in bold (ceilings excluded; only where two or more methods compare), † below chance, and a source column when ``sources`` is given."""
    head, _, _ = headline(table)
    if head.empty:
        return ""
    with_source = bool(sources)
    lines = ["| key metric | " + " | ".join(map(str, head.index)) + (" | source |" if with_source else " |"),
             "|---|" + "---:|" * len(head.index) + ("---|" if with_source else "")]
    for label, lower, cells, source, _ in _rows(table, sources, flags):
        texts = [(f"**{text}**" if bold else text) + ("†" if below else "") for text, bold, below in cells.values()]
        lines.append(f"| {label}{' ↓' if lower else ''} | " + " | ".join(texts)
                     + (f" | {source} |" if with_source else " |"))
    return "\n".join(lines)


def headline_text(table: pd.DataFrame, names: Mapping[str, str] | None = None, width: int = 100) -> str:
    """The headline table as aligned plain text for a terminal of ``width`` columns: key metrics as rows,
    methods as columns (headers wrapped at hyphens and spaces, ``names`` renaming long ones), the best
    value of each row marked ``*`` (ceilings excluded; only where two or more methods compare). Raises ValueError when the methods cannot fit ``width``."""
    import textwrap

    head, lower, _ = headline(table)
    if head.empty:
        return ""
    rows = list(_rows(table, None, None))
    labels = [f"{label}{' ↓' if low else ''}" for label, low, *_ in rows]
    cells = [[text + ("*" if bold else "") for text, bold, _ in c.values()] for _, _, c, *_ in rows]
    first = max(len("key metric"), *map(len, labels))
    value_w = max(len(t) for row in cells for t in row)
    fit = (width - first) // len(head.index) - 1  # one space between columns
    if fit < value_w:
        raise ValueError(f"{len(head.index)} methods do not fit {width} columns")
    col_w = max(value_w, min(fit, max(len(p) for m in head.index
                                          for p in str((names or {}).get(m, m)).split())))
    heads = [textwrap.wrap(str((names or {}).get(m, m)), col_w, break_on_hyphens=True) or [""] for m in head.index]
    depth = max(map(len, heads))
    lines = []
    for i in range(depth):
        title = "key metric" if i == depth - 1 else ""
        parts = [h[i - depth + len(h)] if i >= depth - len(h) else "" for h in heads]
        lines.append(title.ljust(first) + "".join(" " + p.rjust(col_w) for p in parts))
    lines.append("-" * len(lines[-1]))
    lines += [label.ljust(first) + "".join(" " + t.rjust(col_w) for t in row) for label, row in zip(labels, cells)]
    return "\n".join(line.rstrip() for line in lines)


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
    variant against every baseline (every other method but a ceiling) on every key metric."""
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


_NOT_TASKS = {"anatomy recovery", "effective rank", "brain_age", "site", "challenge", "test-retest"}
_TASK_CHANCE = {"balanced_accuracy": 0.5, "r2": 0.0}


def _reaches(row, level: float) -> bool:
    """A downstream score is at chance when its 95 % interval reaches the chance level (without an interval:
    when its mean does not exceed it)."""
    low = pd.to_numeric(pd.Series([row["ci_low"]]), errors="coerce").iloc[0]
    return bool(low <= level) if math.isfinite(low) else bool(float(row["mean"]) <= level)


def tasks_at_chance(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(every downstream task, the tasks at chance for every method other than a ceiling), by their primary
    metric (balanced accuracy: 0.5, R²: 0)."""
    t = table[~table["task"].isin(_NOT_TASKS) & table["metric"].isin(list(_TASK_CHANCE))]
    t = t[~t["method"].astype(str).str.startswith(CEILING_PREFIX)]
    tasks = [str(x) for x in dict.fromkeys(t["task"])]
    at = [k for k in tasks if all(_reaches(r, _TASK_CHANCE[r["metric"]]) for _, r in t[t["task"] == k].iterrows())]
    return tasks, at


def _ceiling_text(table: pd.DataFrame, tasks: list[str]) -> str:
    t = table[table["task"].isin(tasks) & table["metric"].isin(list(_TASK_CHANCE))
              & table["method"].astype(str).str.startswith(CEILING_PREFIX)]
    if t.empty:
        return ""
    above = [f"{r.task} {'BAcc' if r.metric == 'balanced_accuracy' else 'R²'} {float(r.mean):.3f}"
             for r in t.itertuples() if not _reaches(r._asdict(), _TASK_CHANCE[r.metric])]
    name = str(t["method"].iloc[0])
    if not above:
        return f" The {name} is at chance too: these tasks are not learnable from the anatomy at this n."
    flat = [str(r.task) for r in t.itertuples() if _reaches(r._asdict(), _TASK_CHANCE[r.metric])]
    return (f" On the same folds the same probe on the {name.removeprefix(CEILING_PREFIX)} (the ceiling) reaches "
            f"{', '.join(above)}: the information is in the anatomy, the features do not carry it."
            + (f" The ceiling is at chance too on {', '.join(flat)}: not learnable by a linear probe from the anatomy "
               "at this n." if flat else ""))


def _chance_lines(table: pd.DataFrame) -> list[str]:
    tasks, at = tasks_at_chance(table)
    if not tasks or not at:
        return []
    if len(at) == len(tasks):
        return [f"Every downstream task is at chance: on all {len(tasks)} ({', '.join(tasks)}), each method's 95 % "
                "interval reaches the chance level (balanced accuracy 0.5, R² 0), so the features show no information "
                "about these diagnoses and scores." + _ceiling_text(table, tasks)]
    return [f"At chance for every method (the 95 % interval reaches 0.5 balanced accuracy or R² 0): "
            f"{', '.join(at)}." + _ceiling_text(table, at)]


def _others(methods) -> list[str]:
    return [m for m in methods if not m.startswith((ANATCL_PREFIX, CEILING_PREFIX, "reference:"))]


def _anatomy_line(head: pd.DataFrame, c: str, variants: list[str]) -> str:
    vals = head[c].dropna()
    listing = ", ".join(f"{m} {vals[m]:.3f}" for m in vals.index if not m.startswith(CEILING_PREFIX))
    what = f"Anatomy recovery ({c}, cross-validated ridge; 0 = no more than predicting the mean)"
    others = [m for m in _others(vals.index)]
    if not variants or not others:
        return f"{what}: {listing}."
    base = RANDOM_INIT if RANDOM_INIT in others else max(others, key=lambda m: vals[m])
    name = "random init" if base == RANDOM_INIT else f"the best other method ({base})"
    above = [v for v in variants if v in vals.index and vals[v] > vals[base]]
    lead = (f"{len(above)} of {len(variants)} AnatCL variants recover more of the regional anatomy than {name}"
            if above else f"No AnatCL variant recovers more of the regional anatomy than {name}")
    return f"{what}: {lead} ({listing})."


def verdict(table: pd.DataFrame, paired: pd.DataFrame | None = None, note: str = "") -> list[str]:
    """Plain-words verdict sentences (plain text) computed from the results: first whether every downstream
    task is at chance (with the ceiling's score where a synthetic cohort gave one), then anatomy recovery
    against the baseline (random init, else the best other method), the paired tests, and whether a
    baseline was given at all."""
    head, lower, where = headline(table)
    if head.empty:
        return []
    variants = [m for m in head.index if m.startswith(ANATCL_PREFIX)]
    out = _chance_lines(table)
    r2_cols = [c for c in head.columns if where[c][0] == "anatomy recovery"]
    if r2_cols:
        out.append(_anatomy_line(head, r2_cols[0], variants))
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
    elif not variants and len(_others(head.index)) > 1:
        best = {c: _best(head[c], lower[c]) for c in head}
        out.append("Best method per key metric: " + "; ".join(f"{c}: {', '.join(m)}" for c, m in best.items() if m)
                   + ".")
    if len([m for m in head.index if not m.startswith(CEILING_PREFIX)]) < 2:
        ceiling = " and the ceiling" if any(m.startswith(CEILING_PREFIX) for m in head.index) else ""
        out.append("No baseline was given (random init, or another method on the same data): these numbers can be "
                   f"read only against the chance levels{ceiling} in the headline table.")
    if note:
        out.append(note)
    return out
