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

from anatlearn import report_figures as figs
from anatlearn.errors import DataError
from anatlearn.evaluate.features import match_ids
from anatlearn.evaluate.results import Results, pivot_table
from anatlearn.io import atomic_write_text
from anatlearn.provenance import versions

COLOUR_COLUMNS = ("age", "site", "diagnosis")
MAX_MAP_SUBJECTS = 1500

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}img{max-width:100%;margin:.4em 0}.note{color:#666;font-size:.85em}pre{font-size:.75em;overflow:auto}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table_html(df: pd.DataFrame, index: bool = True) -> str:
    return df.to_html(index=index, escape=True, border=0, float_format=lambda v: f"{v:.4g}", na_rep="")


def _classify(path: Path) -> str:
    if path.is_dir() and (path / "results.json").is_file() or path.is_file() and path.suffix == ".json":
        return "results"
    if path.is_dir() and (path / "metrics.csv").is_file():
        return "run"
    raise DataError(f"{path}: not a run directory (with metrics.csv) nor an evaluation results directory "
                    f"(with results.json)")


def _run_section(path: Path) -> str:
    try:
        metrics = pd.read_csv(path / "metrics.csv")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path / 'metrics.csv'}: {exc}") from None
    if metrics.empty:
        return f"<h3>{html.escape(path.name)}</h3><p class=note>metrics.csv is empty (no epoch finished).</p>"
    return (f"<h3>Run {html.escape(path.name)}</h3>" + _img(figs.loss_curves(metrics, path.name), f"loss curves {path.name}")
            + f"<p class=note>{len(metrics)} rows of {html.escape(str(path / 'metrics.csv'))}</p>")


def _openbhb_section(res: Results, name: str) -> str:
    parts = [f"<h3>{html.escape(name)}</h3>",
             "<p class=note>Ridge (brain age, MAE in years) and logistic regression (site, balanced accuracy: lower "
             "means less site information), both tuned by 5-fold CV on train; challenge score = BAcc<sup>0.3</sup> "
             "&times; MAE<sub>external</sub>. Intervals: 95 % bootstrap over test subjects.</p>",
             _table_html(pivot_table(res.table))]
    if res.predictions is not None:
        for method, pred in res.predictions.groupby("method", sort=False):
            parts.append(_img(figs.age_scatter(pred, f"{method}: brain age"), f"predicted vs true age {method}"))
            conf = res.extra.get(method, {}).get("site_confusion")
            if conf:
                parts.append(_img(figs.site_confusion(conf["labels"], conf["matrix"], f"{method}: site (internal test)"),
                                  f"site confusion {method}"))
    return "".join(parts)


def _tasks_section(res: Results, name: str) -> str:
    cfg = res.provenance.get("config", {})
    parts = [f"<h3>{html.escape(name)}</h3>",
             f"<p class=note>Linear probes, {cfg.get('n_repeats', '?')} x {cfg.get('n_splits', '?')}-fold stratified CV; "
             f"mean and 95 % interval ({html.escape(str(cfg.get('interval', '')))}: Nadeau &amp; Bengio corrected "
             "resampled t unless stated).</p>"]
    for metric in figs.PRIMARY:
        if (res.table["metric"] == metric).any():
            parts.append(_img(figs.task_bars(res.table, metric), f"{metric} per task"))
    parts.append(_table_html(pivot_table(res.table)))
    if res.paired is not None and len(res.paired):
        parts.append("<p class=note>Paired tests on identical folds (corrected resampled t-test; Wilcoxon over "
                     "repeat means):</p>" + _table_html(res.paired, index=False))
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


def build_report(inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
                 features: Mapping[str, pd.DataFrame] | None = None, participants: pd.DataFrame | None = None,
                 title: str = "anatlearn report", seed: int = 0) -> Path:
    """Write the HTML report to ``out`` (atomically) and return its path."""
    runs, results = [], []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise DataError(f"report input not found: {path}")
        (runs if _classify(path) == "run" else results).append(path)
    if not runs and not results and not features:
        raise DataError("nothing to report: give run directories, results directories or --features tables")
    body = [f"<h1>{html.escape(title)}</h1>"]
    if runs:
        body.append("<h2>Pretraining</h2>" + "".join(_run_section(p) for p in runs))
    loaded = [(p, Results.read(p)) for p in results]
    openbhb = [(p, r) for p, r in loaded if r.kind == "openbhb"]
    tasks = [(p, r) for p, r in loaded if r.kind != "openbhb"]
    if openbhb:
        body.append("<h2>OpenBHB protocol</h2>" + "".join(_openbhb_section(r, _name(p)) for p, r in openbhb))
    if tasks:
        body.append("<h2>Downstream tasks</h2>" + "".join(_tasks_section(r, _name(p)) for p, r in tasks))
    if features:
        body.append("<h2>Embedding maps</h2>" + _maps_section(features, participants, seed))
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
