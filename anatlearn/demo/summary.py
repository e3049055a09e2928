"""What the demo writes about its results: the claims of the paper measured on the synthetic cohorts
(``demo.json``) and the Markdown summary (``summary.md``)."""

from __future__ import annotations

import pandas as pd

REFERENCE = "random-init"  # the untrained encoder every pretrained one is compared with


def by_method(table: pd.DataFrame) -> dict:
    """{method: {metric: value}} of a tidy table (for demo.json)."""
    return {m: {r.metric: round(float(r.mean), 4) for r in g.itertuples()}
            for m, g in table.groupby("method", sort=False)}


def demo_summary_markdown(table: pd.DataFrame, paired: pd.DataFrame | None, note: str, results=()) -> str:
    """``OUT/summary.md``: the verdict and the README-style headline table (key metrics x methods), each row
    with its source (evaluation, cohort, n) taken from ``results`` (the :class:`Results` behind ``table``)."""
    from anatlearn.report import sources
    from anatlearn.report.summary import headline_markdown, key_metric_label, verdict

    where = {key: text for r in results for key, text in sources.headline_sources(r).items()}
    flags = {key: level for r in results for key, level in sources.below_chance(r).items()
             if key_metric_label(*key[1:])}
    lines = ["# anatlearn demo: summary", "", *[f"- {v}" for v in verdict(table, paired, note)], "",
             headline_markdown(table, where, flags), "",
             "R²: cross-validated ridge from the features to the true log regional GMV / CT / SA (mean over the 68 "
             "regions) and to the latent factors of the downstream subjects; RankMe: effective rank of the features "
             "(Garrido et al. 2023); BAcc: balanced accuracy of a linear probe; ↓: lower is better; bold: the best "
             "value of the row where two or more methods compare (every tie; a ceiling, what perfect features would "
             "reach, is never best). Rows come from different cohorts: see their source.", ""]
    if flags:
        lines += [sources.below_chance_note(flags), ""]
    return "\n".join(lines)


def claims(tasks, obhb) -> dict:
    """The paper's claim, measured: AnatCL vs y-Aware and SimCLR on the diagnosis tasks (balanced accuracy
    points, with the corrected paired t-test), every pretrained model vs random init, brain-age MAE."""
    tab = tasks.table
    out: dict = {}
    bacc = tab[tab["metric"] == "balanced_accuracy"].set_index(["task", "method"])["mean"]
    for task in sorted(tab.loc[tab["metric"] == "balanced_accuracy", "task"].unique()):
        row = {}
        for a in ("anatcl-global", "anatcl-local"):
            for b in ("yaware", "simclr", REFERENCE):
                if (task, a) in bacc and (task, b) in bacc:
                    row[f"{a} - {b} (BAcc points)"] = round(float(100 * (bacc[(task, a)] - bacc[(task, b)])), 1)
        out[task] = row
    if tasks.paired is not None and len(tasks.paired):
        p = tasks.paired
        keep = p[(p["metric"] == "balanced_accuracy") & p["method_a"].str.startswith("anatcl")]
        out["paired_tests"] = keep[["task", "method_a", "method_b", "mean_diff", "p_corrected_t"]].round(4).to_dict("records")
    mae = obhb.table[(obhb.table["task"] == "brain_age") & (obhb.table["metric"].str.contains("external"))]
    out["brain_age_mae_external"] = {m: round(float(v), 2) for m, v in zip(mae["method"], mae["mean"])}
    return out
