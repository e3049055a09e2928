"""``summary.md``: the study's results as Markdown, to paste into docs/study.md (part 2).

Verdict sentences follow the pre-registered rule (:func:`anatlearn.study.units.is_called`: p < 0.05 in the
paired t-test over seeds and one sign on every seed); otherwise the methods are "not distinguishable" on
that metric. The positive control comes first: if it failed, no method is judged.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from anatlearn.io import atomic_write_text
from anatlearn.study.grid import StudySettings
from anatlearn.study.units import LOWER_IS_BETTER, SEED_TEST, is_called

TABLE_METRICS = [("AD-like-vs-CN balanced_accuracy", "AD BAcc"), ("SCZ-like-vs-CN balanced_accuracy", "SCZ BAcc"),
                 ("MMSE-like r2", "MMSE R2"), ("PANSS-like r2", "PANSS R2"),
                 ("brain_age_mae_internal", "MAE int"), ("brain_age_mae_external", "MAE ext"),
                 ("site_bacc", "site BAcc"), ("icc_median", "ICC"), ("anat_r2_GMV", "GMV R2"),
                 ("anat_r2_CT", "CT R2"), ("anat_r2_SA", "SA R2"), ("anat_r2_latents", "latents R2"),
                 ("rankme", "RankMe"), ("val_anat_r2_GMV", "val GMV R2")]
VERDICT_METRICS = ["AD-like-vs-CN balanced_accuracy", "SCZ-like-vs-CN balanced_accuracy", "anat_r2_GMV",
                   "anat_r2_CT", "anat_r2_SA", "anat_r2_latents"]
KEY_METRICS = [*VERDICT_METRICS, "brain_age_mae_external", "rankme"]


def _cell(mean: float, sd: float) -> str:
    digits = 2 if abs(mean) >= 10 else 3
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def seed_table(summary: pd.DataFrame, names, budget: int) -> str:
    """Markdown table: one row per configuration, mean ± sd over seeds of each metric at ``budget``."""
    head = "| configuration | n | " + " | ".join(label for _, label in TABLE_METRICS) + " |"
    lines = [head, "|" + "---|" * (len(TABLE_METRICS) + 2)]
    for name in names:
        rows = summary[(summary["name"] == name) & ((summary["budget"] == budget) | (summary["budget"] == 0))]
        if rows.empty:
            continue
        by = rows.set_index("metric")
        n = int(by["n"].max())
        cells = [_cell(by.loc[m, "mean"], by.loc[m, "sd"]) if m in by.index else "" for m, _ in TABLE_METRICS]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(key: pd.DataFrame, budget: int) -> list[str]:
    """One sentence per (AnatCL configuration, baseline) at ``budget`` under the pre-registered rule."""
    out = []
    seeds = key[(key["test"] == SEED_TEST) & (key["budget"] == budget)]
    for (a, b), g in seeds.groupby(["a", "b"], sort=False):
        better, worse, same = [], [], []
        for metric in VERDICT_METRICS:
            r = g[g["metric"] == metric]
            if r.empty:
                continue
            r = r.iloc[0]
            called = is_called(r["p"], r["same_sign"])
            sign = -1 if metric in LOWER_IS_BETTER else 1
            label = f"{metric} ({r['mean_diff']:+.3f}, p={r['p']:.3g})"
            if not called:
                same.append(metric)
            elif sign * r["mean_diff"] > 0:
                better.append(label)
            else:
                worse.append(label)
        text = f"- **{a} vs {b}** at {budget} epochs: "
        text += "better on " + "; ".join(better) + ". " if better else ""
        text += "worse on " + "; ".join(worse) + ". " if worse else ""
        text += ("not distinguishable on " + ", ".join(same) + ".") if same else ""
        out.append(text)
    return out


def key_table(key: pd.DataFrame, budget: int) -> str:
    """The key comparisons at ``budget``: mean difference A - B, p over seeds and p over CV folds."""
    seeds = key[(key["test"] == SEED_TEST) & (key["budget"] == budget)]
    folds = key[(key["test"] != SEED_TEST) & (key["budget"] == budget)]
    lines = ["| A | B | metric | mean diff A-B | p (seeds) | same sign, all seeds | p (CV folds) |",
             "|---|---|---|---|---|---|---|"]
    for _, r in seeds[seeds["metric"].isin(KEY_METRICS)].iterrows():
        f = folds[(folds["a"] == r["a"]) & (folds["b"] == r["b"]) & (folds["metric"] == r["metric"])]
        pf = f"{f['p'].iloc[0]:.3g}" if len(f) else ""
        lines.append(f"| {r['a']} | {r['b']} | {r['metric']} | {r['mean_diff']:+.4f} | {r['p']:.3g} | "
                     f"{'yes' if r['same_sign'] else 'no'} | {pf} |")
    return "\n".join(lines)


def ablation_table(summary: pd.DataFrame, selection: dict, budget: int) -> str:
    metrics = [("val_anat_r2_GMV", "val GMV R2 (selection)"), ("anat_r2_GMV", "GMV R2"),
               ("anat_r2_latents", "latents R2"), ("AD-like-vs-CN balanced_accuracy", "AD BAcc"),
               ("SCZ-like-vs-CN balanced_accuracy", "SCZ BAcc"), ("rankme", "RankMe")]
    lines = ["| method | configuration | selected | " + " | ".join(l for _, l in metrics) + " |",
             "|" + "---|" * (len(metrics) + 3)]
    for method, sel in selection.items():
        for name in sorted(sel["scores"], key=lambda n: (n != method, n)):
            by = summary[(summary["name"] == name) & (summary["budget"] == budget)].set_index("metric")
            cells = [_cell(by.loc[m, "mean"], by.loc[m, "sd"]) if m in by.index else "" for m, _ in metrics]
            lines.append(f"| {method} | {name} | {'**yes**' if name == sel['selected'] else ''} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def control_progress(summary: pd.DataFrame) -> list[str]:
    """Where the control stands at the budgets it has reached: its GMV-recovery R^2 against random init's."""
    metric = "anat_r2_GMV"
    rows = summary[summary["metric"] == metric]
    rand = rows[rows["name"] == "random-init"]
    lines = []
    for _, r in rows[rows["name"] == "gmv-regression"].sort_values("budget").iterrows():
        ref = f"; random init {rand['mean'].iloc[0]:.3f} ± {rand['sd'].iloc[0]:.3f}" if len(rand) else ""
        sd = "" if pd.isna(r["sd"]) else f" ± {r['sd']:.3f}"
        lines.append(f"- at {int(r['budget'])} epochs ({int(r['n'])} seed(s)): gmv-regression GMV-recovery R^2 "
                     f"{r['mean']:.3f}{sd}{ref}.")
    return lines + [""] if lines else []


def _distinct(values) -> list:
    return list(dict.fromkeys(str(v) for v in values))


def invocations_text(doc: dict, out_name: str) -> str:
    """The command, code, machines and wall time of a study run over several invocations (study.json)."""
    inv = doc.get("invocations", [])
    if not inv:
        return f"Command: `anatlearn study --grid {doc.get('grid')} --out {out_name}`."
    devices, workers = _distinct(i.get("device") for i in inv), [str(i.get("workers")) for i in inv]
    text = (f"Command: `anatlearn study --grid {doc.get('grid')} --out {out_name} --device {'|'.join(devices)}` "
            f"(`--workers` by invocation: {', '.join(workers)}); commit(s) {', '.join(_distinct(i.get('commit', '?') for i in inv))}; "
            f"machine(s): {'; '.join(_distinct(i.get('machine', '?') for i in inv))}. Wall time "
            f"{doc.get('wall_s_total', 0) / 3600:.2f} h over {len(inv)} invocation(s)")
    cut = sum(1 for i in inv if i.get("ended") is False)
    if cut:
        text += f" ({cut} still running or killed without clean-up, counted to their last progress update)"
    return text + "."


def write_summary(out: Path, s: StudySettings, doc: dict, summary: pd.DataFrame, selection: dict,
                  control: dict | None, names, key: pd.DataFrame, figure: Path) -> Path:
    budgets = sorted(set(summary.loc[summary["budget"] > 0, "budget"]))
    parts = [f"# Study results: grid `{doc.get('grid')}`", "",
             f"{invocations_text(doc, out.name)} Seeds {list(s.seeds)}, budgets {list(s.budgets)} epochs "
             f"(ablations {list(s.ablation_budgets)}), {s.n_pretrain} healthy pretraining subjects at "
             f"{'x'.join(map(str, s.shape))}, width {s.width}. Every cell: mean ± sd over seeds.", ""]
    parts += ["## Positive control", ""]
    pending = control is None and s.control
    if control is None and not s.control:
        parts += ["No positive control in this grid.", ""]
    elif pending:
        parts += [f"The positive control (gmv-regression) is not evaluated at {s.selection_budget} epochs yet, so "
                  "under the protocol **no method is judged**: the comparisons below are descriptive.", ""]
        parts += control_progress(summary)
    else:
        verdict = "**passed**" if control["passed"] else "**FAILED: no method is judged below**"
        diffs = ", ".join(f"seed {k}: {v:+.3f}" for k, v in control["differences"].items())
        parts += [f"gmv-regression minus random init on downstream GMV-recovery R^2 at {control['budget']} epochs: "
                  f"{control['mean_difference']:+.3f} ({diffs}; required: >= {control['margin']} in the mean, every "
                  f"seed positive): {verdict}. Control {control['control_mean']:.3f}, random init "
                  f"{control['random_init_mean']:.3f}.", ""]
    if control is None or control["passed"]:
        title = ("Comparisons (descriptive until the positive control is evaluated; same rule" if pending
                 else "Verdict (pre-registered rule")
        parts += [f"## {title}: p < 0.05 in the paired t-test over seeds and the same sign on every seed)", ""]
        for b in budgets:
            parts += verdicts(key, b)
        parts.append("")
    for b in budgets:
        parts += [f"## Results at {b} epochs (random init: untrained)", "", seed_table(summary, names, b), ""]
    parts += ["## Budget curves", "", f"![budget curves](results/{figure.name})", ""]
    if selection:
        parts += [f"## Ablations at {s.selection_budget} epochs (every variant; selection on the healthy "
                  "validation cohort only)", "", ablation_table(summary, selection, s.selection_budget), ""]
    if budgets:
        parts += [f"## Key comparisons at {budgets[-1]} epochs", "",
                  "Paired t-test over seeds; corrected resampled t-test (Nadeau & Bengio 2003) over CV folds on "
                  "seed-averaged fold scores (downstream probes only). Every metric: results/key_comparisons.tsv; "
                  "all pairs and budgets: results/paired_seeds.tsv, results/paired_folds.tsv.", "",
                  key_table(key, budgets[-1]), ""]
    path = Path(out) / "summary.md"
    atomic_write_text(path, "\n".join(parts))
    return path
