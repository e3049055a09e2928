"""One self-contained HTML report (``anatlearn report``): figures are PNGs embedded as base64 data URIs, so
the page can be mailed or archived as one file.

Inputs: run directories (their ``metrics.csv`` gives the pretraining loss curves), results directories of
``anatlearn evaluate`` (OpenBHB: tables, predicted vs true age, site confusion; tasks: per-task bars with
95 % intervals, tables, paired tests), and optionally feature tables plus a participants table for 2-D
embedding maps (t-SNE, or UMAP if installed) coloured by age, site and diagnosis.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from anatlearn.report import clinical as report_clinical
from anatlearn.report import figures as figs
from anatlearn.report import finetune_runs
from anatlearn.report import levels
from anatlearn.report import names
from anatlearn.report import sources
from anatlearn.errors import DataError
from anatlearn.features import match_ids
from anatlearn.evaluate.results import Results, pivot_table
from anatlearn.io import atomic_write_text
from anatlearn.provenance import versions

COLOUR_COLUMNS = ("age", "site", "diagnosis")
MAX_MAP_SUBJECTS = 1500

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}img{max-width:100%;margin:.4em 0}.note{color:#666;font-size:.85em}.warn{color:#a33}pre{font-size:.75em;overflow:auto}
.verdict{background:#f6f8fa;border-left:4px solid #3b6ea5;padding:.5em 1em .5em 2em;margin:.8em 0}.verdict li{margin:.3em 0}
th.m{text-align:left;white-space:nowrap}td.better{background:#e6f4ea}td.worse{background:#fce8e6}
table.headline td,table.comparisons td{white-space:nowrap}table.comparisons{display:inline-table;margin-right:1.5em;vertical-align:top}summary{cursor:pointer;color:#3b6ea5}
.scroll{overflow-x:auto}.scroll td{white-space:nowrap}table.comparisons td{text-align:center}table.comparisons small{color:#555}
table.headline td.source,table.headline th.source{text-align:left;white-space:normal;min-width:16em;font-size:.9em;color:#444}
table.headline td.best{background:#eef4fb}table.headline td.level{color:#555;font-style:italic;white-space:normal;min-width:9em}
@media (max-width:900px){table.headline td.source,table.headline th.source{min-width:11em}table.headline td.level{min-width:7em}}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table_html(df: pd.DataFrame, index: bool = True) -> str:
    """A table that scrolls sideways on a narrow screen instead of running off the page."""
    return ("<div class=scroll>" + df.to_html(index=index, escape=True, border=0, float_format=lambda v: f"{v:.4g}",
                                              na_rep="") + "</div>")


def _pivot(table: pd.DataFrame) -> pd.DataFrame:
    """pivot_table of a results table read back from JSON (where NaN intervals come back as None)."""
    return pivot_table(table.astype({c: float for c in ("mean", "ci_low", "ci_high") if c in table.columns}))


def _results_table(res: Results) -> str:
    """The pivoted results table, values below chance marked † with the plain-words note under the table."""
    pivot = _pivot(res.table)
    flags = sources.below_chance(res)
    for (method, task, metric) in flags:
        if (task, metric) in pivot.index and method in pivot.columns:
            pivot.loc[(task, metric), method] = f"{pivot.loc[(task, metric), method]} {sources.BELOW_CHANCE_MARK}"
    note = sources.below_chance_note(flags)
    level = levels.levels([res])
    pivot["chance or trivial level"] = [(level.get((str(t), str(m))) or (None, ""))[1] for t, m in pivot.index]
    pivot = pivot.rename(index=levels.metric_words, level="metric").rename(index=levels.task_words, level="task")
    return _table_html(pivot) + (f"<p class=warn>{html.escape(note)}</p>" if note else "")


def _heading(res: Results, folder: str) -> str:
    """A results sub-section's title: the task set of a tasks evaluation, the cohort of any other (the
    folder's name only when neither was recorded), with the folder named in small print."""
    title = sources.task_set(res, folder) if res.kind == "tasks" else sources.cohort(res)
    if title == sources.NOT_RECORDED:
        title = folder
    where = f"{sources.cohort(res)}, results in {folder}" if res.kind == "tasks" else f"results in {folder}"
    if res.extra.get("runs"):  # a comparison the report built from fine-tuning runs
        where = "fine-tuning runs: " + ", ".join(res.extra["runs"])
    return f"<h3>{html.escape(title)} <small class=note>({html.escape(where)})</small></h3>"


def _classify(path: Path) -> str:
    if path.is_dir() and (path / "results.json").is_file() or path.is_file() and path.suffix == ".json":
        return "results"
    if path.is_dir() and (path / "metrics.csv").is_file():
        return "run"
    raise DataError(f"{path}: not a run directory (with metrics.csv) nor an evaluation results directory "
                    f"(with results.json)")


def _read_metrics(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path / "metrics.csv")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path / 'metrics.csv'}: {exc}") from None


def _pretraining_section(paths: Sequence[Path]) -> str:
    """Loss terms per run against epochs, each term on its own scale; throughput apart, small."""
    runs = {n: _read_metrics(p) for n, p in zip(names.short_names(paths), paths)}  # two runs/anatcl: both
    empty = [n for n, m in runs.items() if m.empty]
    runs = {n: m for n, m in runs.items() if not m.empty}
    parts = [f"<p class=note>{html.escape(', '.join(empty))}: metrics.csv is empty (no epoch finished).</p>"] if empty else []
    if runs:
        listed = ", ".join(runs)
        parts.append(_img(figs.training_curves(runs), f"loss curves {listed}"))
        parts.append("<p class=note>Per-epoch means of each logged term of the runs' metrics.csv, each term on its "
                     "own scale.</p>")
    return "".join(parts)


def _run_details_section(paths: Sequence[Path]) -> str:
    """Training speed (samples/s per epoch): about the machine and the run, not a result; "" without it."""
    runs = {n: m for n, p in zip(names.short_names(paths), paths) if not (m := _read_metrics(p)).empty}
    speed = figs.throughput(runs) if runs else None
    if speed is None:
        return ""
    return ("<h2>Run details</h2><p class=note>Training throughput of each run (median samples/s per epoch): it "
            "depends on the machine and its load, not on what the method learns.</p>"
            + _img(speed, f"throughput {', '.join(runs)}"))


def _openbhb_section(res: Results, name: str) -> str:
    parts = [_heading(res, name),
             "<p class=note>Ridge (brain age, MAE in years) and logistic regression (site, balanced accuracy: lower "
             "means less site information), both tuned by 5-fold CV on train; challenge score = BAcc<sup>0.3</sup> "
             "&times; MAE<sub>external</sub>. Intervals: 95 % bootstrap over test subjects.</p>",
             _results_table(res)]
    if res.predictions is not None:
        parts.append("<details><summary>predicted vs true age and site confusion, per method</summary>")
        for method, pred in res.predictions.groupby("method", sort=False):
            parts.append(_img(figs.age_scatter(pred, f"{method}: brain age"), f"predicted vs true age {method}"))
            conf = res.extra.get(method, {}).get("site_confusion")
            if conf:
                parts.append(_img(figs.site_confusion(conf["labels"], conf["matrix"], f"{method}: site (internal test)"),
                                  f"site confusion {method}"))
        parts.append("</details>")
    return "".join(parts)


def _tasks_section(res: Results, name: str) -> str:
    cfg = res.provenance.get("config", {})
    parts = [_heading(res, name),
             f"<p class=note>Linear probes, {cfg.get('n_repeats', '?')} x {cfg.get('n_splits', '?')}-fold stratified CV; "
             f"mean and 95 % interval ({html.escape(str(cfg.get('interval', '')))}: Nadeau &amp; Bengio corrected "
             "resampled t unless stated). Dashed line: the chance level (balanced accuracy and ROC AUC 0.5) or "
             "R² 0, what predicting the training folds' mean scores; a negative R² predicts worse than that mean, "
             "i.e. the probe found no signal and its noise costs accuracy. Error bars: 95 % intervals."
             + (" Grey hatched: the ceiling, the same probe on the same folds given the cohort's true anatomy "
                "(log GMV, CT and SA of every region)." if cfg.get("ceiling") else "") + "</p>"]
    for metric in figs.PRIMARY:
        if (res.table["metric"] == metric).any():
            parts.append(_img(figs.task_bars(res.table, metric), f"{metric} per task"))
    parts.append(_results_table(res))
    if res.paired is not None and len(res.paired):
        parts.append(f"<details><summary>all {len(res.paired)} paired tests (every pair of methods, every task and "
                     "metric; corrected resampled t-test and Wilcoxon over repeat means)</summary>"
                     + _table_html(res.paired, index=False) + "</details>")
    return "".join(parts)


def _rank_max(res: Results) -> dict[str, float]:
    """method -> RankMe's maximum, min(subjects, features), where the evaluation recorded the feature count."""
    cfg = res.provenance.get("config", {}) or {}
    n, feats = cfg.get("n_subjects"), cfg.get("n_features")
    return {m: float(min(n, f)) for m, f in feats.items()} if n and isinstance(feats, dict) else {}


def _words_table(res: Results) -> str:
    """A results table pivoted, its metrics in words (anatlearn.report.levels.metric_words), with each
    row's chance or trivial level."""
    pivot = _pivot(res.table)
    level = levels.levels([res])
    pivot["chance or trivial level"] = [(level.get((str(t), str(m))) or (None, ""))[1] for t, m in pivot.index]
    return _table_html(pivot.rename(index=levels.metric_words, level="metric"))


def _anatomy_section(res: Results, name: str) -> str:
    cfg = res.provenance.get("config", {})
    per_target = res.extra.get("per_target", {})
    parts = [_heading(res, name),
             f"<p class=note>Cross-validated ridge regression ({cfg.get('n_splits', '?')}-fold over "
             f"{cfg.get('n_subjects', '?')} subjects, features standardised in each fold, penalty by leave-one-out "
             "on the training part) from each method's frozen features to each target; R² of the pooled "
             "out-of-fold predictions, averaged over the targets of a family (e.g. the 68 regions' true log GMV). "
             "RankMe: exp of the entropy of the normalised singular values of the raw feature matrix (Garrido et al., "
             "ICML 2023); centred: of the between-subject variation.</p>",
             _img(figs.anatomy_bars(res.table, _rank_max(res)), "anatomy recovery"), _words_table(res)]
    if per_target:
        frames = {(m, fam): pd.Series(v) for m, fams in per_target.items() for fam, v in fams.items()}
        wide = pd.DataFrame(frames).rename(index=levels.target_words)
        sizes = ", ".join(f"{fam}: {len(v)}" for fam, v in next(iter(per_target.values())).items())
        parts.append(f"<details><summary>R² per target ({sizes})</summary>"
                     + _table_html(wide) + "</details>")
    return "".join(parts)


def _other_section(res: Results, name: str) -> str:
    paired = ""
    if res.kind == "finetune-comparison" and res.paired is not None and len(res.paired):
        paired = ("<p class=note>Paired corrected resampled t-tests over the outer folds (Nadeau &amp; Bengio "
                  "2003): mean difference a - b, t, p.</p>" + _table_html(res.paired, index=False))
    note = res.extra.get("note") if res.kind == "finetune-comparison" else ""
    return (_heading(res, name) + (f"<p class=warn>{html.escape(note)}</p>" if note else "") + _results_table(res)
            + paired)


def _merged_sources(loaded: Sequence[tuple[Path, Results]]) -> dict[tuple[str, str], str]:
    """(task, metric) -> where its numbers come from; a row filled from several inputs that differ (another
    cohort, another n) names which methods each source holds, so a row never mixes cohorts silently."""
    found: dict[tuple[str, str], dict[str, list[str]]] = {}
    for _, r in loaded:
        for key, text in sources.headline_sources(r).items():
            methods = r.table.loc[(r.table["task"] == key[0]) & (r.table["metric"] == key[1]), "method"]
            found.setdefault(key, {}).setdefault(text, []).extend(map(str, dict.fromkeys(methods)))
    return {key: next(iter(texts)) if len(texts) == 1 else
            "; ".join(f"{', '.join(ms)}: {text}" for text, ms in texts.items()) for key, texts in found.items()}


def _summary_section(loaded: Sequence[tuple[Path, Results]], note: str, notes: Sequence[str] = (),
                     checks: Sequence[str] = ()) -> str:
    """Verdict, headline table and key comparisons (anatlearn.report.summary), first on the page."""
    from anatlearn.report.summary import comparisons_html, headline_html, key_comparisons, key_metric_label, verdict

    # fine-tuning comparisons have their own section (their probe rows repeat a tasks evaluation on fewer
    # folds, and a fine-tuned model is no pretraining baseline); they lead only a page that has nothing else
    loaded = [(p, r) for p, r in loaded if r.kind != "finetune-comparison"] or loaded
    tables = [r.table for _, r in loaded if r.table is not None and len(r.table)]
    if not tables and not notes and not checks:
        return ""
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["method", "task", "metric"])
    paired = [r.paired for _, r in loaded if r.paired is not None and len(r.paired)]
    paired = pd.concat(paired, ignore_index=True) if paired else None
    lines = (verdict(table, paired, note) if tables else []) + list(checks)
    parts = []
    if lines:
        parts.append("<h2>Verdict</h2><ul class=verdict>" + "".join(f"<li>{html.escape(v)}</li>" for v in lines)
                     + "</ul>")
    parts += [f"<p class=warn>{html.escape(n)}</p>" for n in notes]
    if not tables:
        return "".join(parts)
    flags = {key: level for _, r in loaded for key, level in sources.below_chance(r).items()}
    head = headline_html(table, _merged_sources(loaded), flags, levels.levels([r for _, r in loaded]))
    if head:
        shown = {k: v for k, v in flags.items() if key_metric_label(*k[1:])}
        parts.append("<h2>Headline</h2>" + head + "<p class=note>Means over folds (R², BAcc) or test subjects "
                     "(MAE); ↓ lower is better; <b>bold</b>: the best value of a row where two or more methods "
                     "compare (every tie; a ceiling, the same probe on the true anatomy of a synthetic cohort, is "
                     "never best: it is what perfect features would reach). " + html.escape(levels.LEGEND)
                     + " The rows come from different evaluations and cohorts: each names its own in the source "
                     "column (a clinical tool's numbers further down are on the cohort it names there). Intervals and "
                     "every metric are in the sections below.</p>"
                     + (f"<p class=warn>{html.escape(sources.below_chance_note(shown))}</p>" if shown else ""))
    comp = comparisons_html(key_comparisons(table, paired))
    if comp:
        parts.append("<h2>Key comparisons: AnatCL against each baseline</h2>" + comp
                     + "<p class=note>Difference (AnatCL variant minus baseline); green: AnatCL better, red: worse; "
                     "p: corrected resampled t-test on identical folds (Nadeau &amp; Bengio 2003), bold when &lt; 0.05; "
                     "no p where the evaluation gives no paired test (anatomy recovery, OpenBHB, ICC).</p>")
    return "".join(parts)


def _maps_section(features: Mapping[str, pd.DataFrame], participants: pd.DataFrame | None, seed: int) -> str:
    parts = []
    for method, table in features.items():
        if participants is not None:
            table = match_ids(table, participants, method)
        if len(table) > MAX_MAP_SUBJECTS:  # t-SNE is quadratic: a fixed random subset keeps the report fast
            table = table.sample(MAX_MAP_SUBJECTS, random_state=seed)
        if len(table) < 5:
            parts.append(f"<p class=note>{html.escape(method)}: too few subjects for a 2-D map.</p>")
            continue
        coords, algo = figs.embed_2d(table.to_numpy(), seed)
        colours = {}
        if participants is not None:
            for col in COLOUR_COLUMNS:
                if col in participants.columns:
                    colours[col] = participants.loc[table.index, col].reset_index(drop=True)
        parts.append(_img(figs.embedding_map(coords, method, colours, algo), f"embedding map {method}"))
    return "".join(parts)


SECTIONS = {"anatomy": ("Anatomy recovery", _anatomy_section), "tasks": ("Downstream tasks", _tasks_section),
            "openbhb": ("OpenBHB protocol", _openbhb_section)}
OTHER_TITLES = {"icc": "Test-retest reliability",
                "finetune-comparison": "Fine-tuning against linear probing (the same outer folds)"}


def build_report(inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
                 features: Mapping[str, pd.DataFrame] | None = None, participants: pd.DataFrame | None = None,
                 title: str = "anatlearn report", seed: int = 0, note: str = "") -> Path:
    """Write the HTML report to ``out`` (atomically) and return its path.

    Fine-tuning runs (``anatlearn finetune --out``) are shown side by side on their shared outer folds with
    the probes of any ``evaluate tasks`` directory given (:mod:`anatlearn.report.finetune_runs`).
    Order: verdict, headline table and key comparisons (from every results directory), then anatomy
    recovery, downstream tasks, OpenBHB, other results, clinical tools, pretraining curves, embedding maps,
    run details (throughput), provenance.
    ``note`` is appended to the verdict (e.g. the number of seeds behind it).
    """
    runs, results, clinical = [], [], []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise DataError(f"report input not found: {path}")
        if report_clinical.is_clinical(path):  # brain-age / harmonize / explain outputs
            clinical.append(path)
            continue
        (runs if _classify(path) == "run" else results).append(path)
    if not runs and not results and not features and not clinical:
        raise DataError("nothing to report: give run directories, results directories or `features` tables")
    body = [f"<h1>{html.escape(title)}</h1>"]
    results, notes = names.unique_inputs(results)
    runs, repeated = names.unique_inputs(runs)
    notes += repeated
    tuned = [p for p in results if finetune_runs.is_finetune_run(p)]
    loaded = [(p, Results.read(p)) for p in results if p not in tuned]
    notes += names.disambiguate(loaded)
    if tuned:  # fine-tuning runs: side by side with each other and the probes given, on the same folds
        shown, why = finetune_runs.comparison(tuned, [(p, r) for p, r in loaded if r.kind == "tasks"])
        for path, res in zip(tuned if why else [Path("fine-tuning")], shown):
            res.extra.update(note=why, runs=[str(p) for p in ([path] if why else tuned)])
            loaded.append((path, res))
    checks = levels.input_checks([(_name(p), r) for p, r in loaded], features) + report_clinical.verdict_lines(clinical)
    body.append(_summary_section(loaded, note, notes, checks))
    for kind, (heading, section) in SECTIONS.items():
        of_kind = [(p, r) for p, r in loaded if r.kind == kind]
        if of_kind:
            body.append(f"<h2>{heading}</h2>" + "".join(section(r, _name(p)) for p, r in of_kind))
    for p, r in loaded:
        if r.kind not in SECTIONS:
            body.append(f"<h2>{html.escape(OTHER_TITLES.get(r.kind, r.kind))}</h2>" + _other_section(r, _name(p)))
    if clinical:
        body.append(report_clinical.section(clinical))
    if runs:
        body.append("<h2>Pretraining</h2>" + _pretraining_section(runs))
    if features:
        body.append("<h2>Embedding maps</h2>" + _maps_section(features, participants, seed))
    if runs:
        body.append(_run_details_section(runs))
    prov = {_name(p): r.provenance for p, r in loaded}
    body.append("<h2>Provenance</h2><details><summary>versions and evaluation settings</summary><pre>"
                + html.escape(json.dumps({"report_versions": versions(), "results": prov}, indent=1, default=str))
                + "</pre></details>")
    page = (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = Path(out)
    atomic_write_text(out, page)
    return out


def _name(path: Path) -> str:
    return path.parent.name if path.suffix == ".json" else path.name


__all__ = ["build_report"]
