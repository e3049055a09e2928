"""What the demo writes about its results: the claims of the paper measured on the synthetic cohorts
(``demo.json``) and the Markdown summary (``summary.md``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE = "random-init"  # the untrained encoder every pretrained one is compared with
# the console's short names of the reference and ceiling columns (OUT/summary.md keeps the full ones)
CONSOLE_NAMES = {"reference: pooled voxels": "voxels (ref.)", "ceiling: true latents": "latents (ceil.)",
                 "ceiling: measured descriptors": "descr. (ceil.)"}
CONSOLE_WIDTH = 100


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


def console_summary(summary: dict, table: pd.DataFrame, width: int = CONSOLE_WIDTH) -> str:
    """What ``anatlearn demo`` prints, every line within ``width`` columns: the headline table (means of the key
    metrics; intervals and every metric are in OUT/summary.md, OUT/results.csv and the report), the AnatCL
    claims, the timings and where the report is."""
    import textwrap

    from anatlearn.report.summary import headline_text

    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(text, width, subsequent_indent=indent + "  ", initial_indent=indent,
                             break_on_hyphens=False)

    out = Path(summary["summary"]).parent
    lines = [headline_text(table, CONSOLE_NAMES, width)]
    lines += wrap("*: best value of the row among the methods (the reference and ceiling columns excluded); "
                  "↓: lower is better; voxels (ref.): linear probes on 4x-pooled voxels; latents, descr. (ceil.): "
                  "probes on the true latents and on the measured descriptors."
                  f" Intervals, sources and every metric: {out / 'summary.md'}, "
                  f"{out / 'results.csv'}.")
    lines += ["", "AnatCL minus baselines, balanced-accuracy points (positive: AnatCL better):"]
    for task, row in summary["claims"].items():
        if task not in ("paired_tests", "brain_age_mae_external"):
            lines += wrap(f"{task}: " + ", ".join(f"{k.split(' (')[0]} {v:+.1f}" for k, v in row.items()), "  ")
    lines += [""] + wrap("timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()))
    lines += wrap(f"report: {summary['report']}")
    return "\n".join(lines)
