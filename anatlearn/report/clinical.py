"""The report's section for the clinical tools (``anatlearn brain-age``, ``harmonize``, ``explain``).

A clinical output directory is recognised by its ``brain_age.json``, ``harmonize.json`` or ``explain.json``
(each written last by its tool), directly or one level down (e.g. the demo's ``OUT/clinical/``). Figures are
the PNGs the tools wrote, embedded as data URIs like the rest of the report.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from anatlearn.errors import DataError

MARKERS = {"brain_age.json": "brain-age", "harmonize.json": "harmonize", "explain.json": "explain"}


def _tool_dirs(path: Path) -> list[tuple[str, Path]]:
    """(tool, directory) of every clinical output at ``path`` or in its immediate sub-directories."""
    if not path.is_dir():
        return []
    found = []
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        found += [(tool, d) for marker, tool in MARKERS.items() if (d / marker).is_file()]
    return found


def is_clinical(path: Path) -> bool:
    return bool(_tool_dirs(Path(path)))


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_COLUMN_WORDS = {"measure": "measure", "group": "group", "control": "control group", "n_group": "n (group)",
                 "n_control": "n (control)", "mean_group": "mean (group)", "mean_control": "mean (control)",
                 "hedges_g": "Hedges' g", "g_ci_low": "g, 95 % low", "g_ci_high": "g, 95 % high", "t": "Welch t",
                 "df": "df", "p": "p", "corrected_gap": "bias-corrected gap (y)", "gap": "gap (y)",
                 "signed_mean": "signed mean"}


def _table(rows, columns) -> str:
    df = pd.DataFrame(rows)
    df = df[[c for c in columns if c in df.columns]]
    if "measure" in df.columns:
        df["measure"] = df["measure"].map(lambda v: _COLUMN_WORDS.get(v, v))
    df = df.rename(columns=_COLUMN_WORDS)
    return ("<div class=scroll>" + df.to_html(index=False, escape=True, border=0, float_format=lambda v: f"{v:.3g}",
                                              na_rep="") + "</div>")


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _cohort(name) -> str:
    return f"{html.escape(str(name))} cohort" if name else "cohort (name not recorded)"


def _site_line(check: dict, label: str) -> str:
    """One site-probe result with its chance level and n, the below-chance note right beside the numbers."""
    n = f", n = {check['n_subjects']}" if check.get("n_subjects") else ""
    line = (f"<p>{label}: {check['before']:.3f} before, {check['after']:.3f} after ComBat (chance "
            f"{check['chance']:.3f}{n}).</p>")
    if check.get("note"):
        line += f"<p class=warn><b>Below chance.</b> {html.escape(check['note'])}</p>"
    return line


def _encoder_note(checkpoint) -> str:
    return f"<p class=note>Encoder: {html.escape(str(checkpoint))}</p>" if checkpoint else ""


def uninformative(s: dict) -> str:
    """Why a brain-age model is uninformative, where its summary records it (``uninformative``: True or a
    reason, at the top level or in ``reference``); "" otherwise."""
    for where in (s, s.get("reference") or {}):
        flag = where.get("uninformative")
        if flag:
            return flag if isinstance(flag, str) else "its predictions carry no more age information than the " \
                "reference's mean age"
    return ""


def verdict_lines(paths) -> list[str]:
    """A verdict sentence per brain-age output whose model is recorded as uninformative."""
    out = []
    for tool, d in (item for p in paths for item in _tool_dirs(Path(p))):
        if tool == "brain-age" and (why := uninformative(_load(d / "brain_age.json"))):
            why = why if "uninformative" in why else f"the age model is uninformative: {why}"
            out.append(f"Brain age ({d.name}): {why}.")
    return out


def _brain_age(d: Path) -> str:
    s = _load(d / "brain_age.json")
    ref = s["reference"]
    why = uninformative(s)
    cohort = _cohort(s.get("cohort"))
    parts = [f"<h3>Brain age: {html.escape(d.name)}</h3>",
             _encoder_note(s.get("encoder")),
             f"<p>Brain-age MAE on the {cohort}: <b>{s['cohort_mae']:.2f} y</b> (n = {s['n_cohort']}, by the brain-age "
             f"tool fitted on the reference below).</p>",
             f"<p class=note>Ridge on frozen features, fitted on {ref['n_reference']} reference subjects "
             f"({_cohort(s.get('reference_cohort'))}) "
             f"(cross-validated MAE {ref['mae_reference_cv']:.2f} y). Bias correction <b>{html.escape(ref['correction'])}</b> "
             f"fitted on the reference's CV predictions (pred = {ref['slope_a']:.2f} age + {ref['offset_b']:.1f}): "
             f"r(gap, age) {ref['r_gap_age_reference']:+.3f} &rarr; {ref['r_corrected_gap_age_reference']:+.3f}. "
             "</p>"]
    if why:
        parts.insert(1, f"<p class=warn><b>Uninformative model:</b> {html.escape(why)}.</p>")
    if s.get("warning"):
        parts.append(f"<p class=note>Warning: {html.escape(s['warning'])}</p>")
    parts.append(_img(d / "brain_age_scatter.png", "predicted vs chronological age"))
    if s.get("group_comparison"):
        parts.append(_img(d / "gap_by_group.png", "brain-age gap by group"))
        parts.append("<p class=note>Each group vs the control group: Hedges' g with 95 % interval; Welch's t-test.</p>"
                     + _table(s["group_comparison"], ["measure", "group", "control", "n_group", "n_control", "mean_group",
                                                      "mean_control", "hedges_g", "g_ci_low", "g_ci_high", "t", "df", "p"]))
    return "".join(parts)


def _harmonize(d: Path) -> str:
    s = _load(d / "harmonize.json")
    sites = ", ".join(f"{k} ({v})" for k, v in s.get("sites", {}).items())
    parts = [f"<h3>Harmonisation: {html.escape(d.name)}</h3>", _encoder_note(s.get("encoder")),
             f"<p class=note>{html.escape(s.get('method', 'ComBat'))} over sites {html.escape(sites)} (reference counts), "
             f"preserving {html.escape(', '.join(s.get('covariates', [])) or 'no covariate')}; {s['n_subjects']} "
             f"subjects of the {_cohort(s.get('cohort'))} harmonised.</p>"]
    check, ref = s.get("site_check"), s.get("reference_site_check")
    if check:
        parts.append(_site_line(check, f"Site probe balanced accuracy on the {_cohort(s.get('cohort'))} "
                                       f"({html.escape(check['what'])})"))
    if ref:
        parts.append(_site_line(ref, "On the reference ComBat was fitted on"))
    shown = {c.get("note") for c in (check, ref) if c}
    warnings = s.get("warnings", [s["warning"]] if s.get("warning") else [])
    for warning in warnings:
        if warning not in shown:
            parts.append(f"<p class=warn><b>Warning:</b> {html.escape(warning)}</p>")
    if s.get("validation"):
        parts.append("<p class=note>Validation (raw vs harmonised features):</p>" + _table(
            s["validation"], list(s["validation"][0].keys())))
    return "".join(parts)


def _explain(d: Path) -> str:
    s = _load(d / "explain.json")
    aucs = s.get("truth_auc", {})
    auc = "; ".join(f"AUC vs true {html.escape(k)} regions {v:.3f}" for k, v in aucs.items())
    parts = [f"<h3>Region map: {html.escape(str(s.get('task', d.name)))} ({html.escape(d.name)})</h3>",
             _encoder_note(s.get("weights")),
             f"<p class=note>{html.escape(s.get('method', ''))} through encoder + probe, baseline "
             f"{html.escape(s.get('baseline', ''))}, {s['n_explained']} subjects, summed over {s['n_regions']} regions "
             f"of {html.escape(s['atlas'])}; importance = {html.escape(s['importance'])}."
             + (f" {auc}." if auc else "") + "</p>",
             _img(d / "regions.png", "region importance map"),
             _table(s.get("top_regions", []), ["region", "importance", "share", "signed_mean"])]
    return "".join(parts)


RENDER = {"brain-age": _brain_age, "harmonize": _harmonize, "explain": _explain}


def section(paths) -> str:
    """HTML of every clinical output found at ``paths`` (see :func:`is_clinical`)."""
    items = [item for p in paths for item in _tool_dirs(Path(p))]
    order = {tool: i for i, tool in enumerate(RENDER)}
    items.sort(key=lambda item: order[item[0]])
    return "<h2>Brain age, harmonisation, region maps</h2>" + "".join(RENDER[tool](d) for tool, d in items)
