"""File-level runs of the clinical tools, shared by the CLI and the demo: read tables, fit or load a model,
write a results directory whose ``<tool>.json`` (written last) the report reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from anatlearn.clinical.brain_age import BrainAge, BrainAgeModel
from anatlearn.clinical.combat import ComBat, ComBatHarmonizer
from anatlearn.clinical.group_stats import compare_groups
from anatlearn.data.tables import read_participants
from anatlearn.errors import ConfigError, DataError, listed
from anatlearn.features import match_ids, read_features, write_features
from anatlearn.io import atomic_write_bytes, atomic_write_text
from anatlearn.data.lineage import check_same_encoder, identity_of, table_identity
from anatlearn.provenance import provenance


def parse_where(items: Sequence[str] | None, option: str = "`reference_where`") -> dict[str, list[str]]:
    """``COL=V1,V2`` strings -> {COL: [V1, V2]}."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        col, sep, values = item.partition("=")
        if not sep or not col or not values:
            raise ConfigError(f"{option} {item!r}: expected COLUMN=VALUE[,VALUE...]")
        out[col] = values.split(",")
    return out


def select_rows(participants: pd.DataFrame, where: dict[str, list[str]], option: str) -> pd.DataFrame:
    source = participants.attrs.get("source", "the participants table")
    keep = pd.Series(True, index=participants.index)
    for col, values in where.items():
        if col not in participants.columns:
            raise DataError(f"{option}: column {col!r} not found in {source}")
        keep &= participants[col].astype(str).isin(values)
    if not keep.any():
        raise DataError(f"{option}: no subject of {source} matches {where}")
    out = participants[keep]
    out.attrs = dict(participants.attrs)
    return out


def _load_pair(features, participants, name: str):
    """(the table's rows with labels, the labels, the whole table's identity for the results)."""
    table = features if isinstance(features, pd.DataFrame) else read_features(features)
    labels = participants if isinstance(participants, pd.DataFrame) else read_participants(participants)
    source = str(features) if not isinstance(features, pd.DataFrame) else name
    return match_ids(table, labels, source), labels, table_identity(table, name)


def _name(features) -> str:
    return str(features) if not isinstance(features, pd.DataFrame) else "features"


def _column(participants: pd.DataFrame, column: str, option: str) -> pd.Series:
    if column not in participants.columns:
        raise DataError(f"{option} {column!r}: no such column in {participants.attrs.get('source', 'the participants table')} "
                        f"(columns: {listed(participants.columns)})")
    return participants[column]


def _encoder_of(table: pd.DataFrame) -> str | None:
    """The checkpoint a feature table was embedded with (its metadata), for the report."""
    return table.attrs.get("metadata", {}).get("checkpoint")


def cohort_name(participants: pd.DataFrame) -> str:
    """The cohort's name for the report: its participants table's directory (a dataset) or file stem; "" when
    the table came from memory."""
    source = participants.attrs.get("source")
    if not source:
        return ""
    path = Path(str(source))
    return path.parent.name if path.stem == "participants" else path.stem


def _write_json(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=1, default=str, allow_nan=True))


def run_brain_age(out, features, participants, reference=None, reference_participants=None, model=None,
                  reference_where=None, age_column: str = "age", group_column: str | None = None,
                  control: str = "CN", correction: str = "cole", folds: int = 5, seed: int = 0) -> dict:
    """Fit (on ``reference``) or load (``model``) a brain-age model, score the cohort, compare groups, plot."""
    from anatlearn.clinical import figures

    out = Path(out)
    if (reference is None) == (model is None):
        raise ConfigError("give either `reference` (with `reference_participants`) to fit a model or `model` to "
                          "re-apply a saved one")
    X, labels, inputs = _load_pair(features, participants, "features")
    inputs = {"features": inputs, "participants": labels.attrs.get("source")}
    age = pd.to_numeric(_column(labels, age_column, "`age_column`").loc[X.index], errors="coerce")
    if age.isna().any():
        raise DataError(f"`age_column` {age_column!r}: missing or non-numeric age for {int(age.isna().sum())} "
                        f"subject(s) (e.g. {age.index[age.isna()][0]})")
    groups = _column(labels, group_column, "`group_column`").loc[X.index] if group_column else None
    if model is None:
        if reference_participants is None:
            raise ConfigError("`reference` needs `reference_participants` (its ages)")
        ref_labels = read_participants(reference_participants) if not isinstance(reference_participants, pd.DataFrame) \
            else reference_participants
        ref_labels = select_rows(ref_labels, parse_where(reference_where), "`reference_where`")
        R, _, inputs["reference"] = _load_pair(reference, ref_labels, "reference")
        check_same_encoder(identity_of(R), X, f"the reference {_name(reference)}", _name(features), warn=False)
        ref_age = pd.to_numeric(_column(ref_labels, age_column, "`age_column`").loc[R.index], errors="coerce")
        if ref_age.isna().any():
            raise DataError(f"reference: missing or non-numeric {age_column!r} for subject {ref_age.index[ref_age.isna()][0]}")
        fitted = BrainAge(correction, folds, seed=seed).fit(R, ref_age.to_numpy()).model_
        fitted.encoder_identity_ = identity_of(R)  # checked when the saved model is re-applied
        ref_table = fitted.reference_table()  # refuses a model whose predictions do not follow age
        out.mkdir(parents=True, exist_ok=True)
        fitted.save(out / "brain_age_model.npz")
    else:
        fitted = BrainAgeModel.load(model)
        check_same_encoder(fitted.encoder_identity_, X, f"brain-age model {model}", _name(features))
        out.mkdir(parents=True, exist_ok=True)
        ref_table = fitted.reference_table()
    atomic_write_text(out / "reference_brain_age.tsv", ref_table.to_csv(sep="\t", float_format="%.6g"))
    table = fitted.gaps(X, age.to_numpy())
    if groups is not None:
        table[group_column] = groups.astype(str)
    atomic_write_text(out / "brain_age.tsv", table.to_csv(sep="\t", float_format="%.6g"))
    summary = {"reference": fitted.summary(), "n_cohort": len(table), "cohort": cohort_name(labels),
               "reference_cohort": cohort_name(ref_labels) if model is None else None,
               "encoder": _encoder_of(X),
               "cohort_mae": float(table["gap"].abs().mean()),
               "cohort_r_corrected_gap_age": float(np.corrcoef(table["corrected_gap"], table["age"])[0, 1])
               if len(table) > 2 and table["age"].std() > 0 else None,
               "n_cross_validated": int(table["cross_validated"].sum()), "model": str(model or "brain_age_model.npz"),
               "inputs": inputs}
    verdict = fitted.informativeness()
    if not verdict["informative"]:
        summary["uninformative"] = verdict["reason"]  # the CLI's first line; the report's heading
    if fitted.correction == "cole" and fitted.slope_ < 0.5:
        summary["warning"] = (f"the reference's predictions follow age with slope a = {fitted.slope_:.2f}; the cole "
                              f"correction divides residuals by a, so corrected gaps are {1 / fitted.slope_:.1f}x wider "
                              f"(--correction beheshti does not rescale)")
    heading = "UNINFORMATIVE age model (CV R^2 {:.2f}): ".format(verdict["r2_reference_cv"]) if "uninformative" in summary else ""
    atomic_write_bytes(out / "brain_age_scatter.png", figures.brain_age_scatter(ref_table, table, groups,
                                                                                heading + "brain age"))
    if groups is not None:
        comp = pd.concat([compare_groups(table[c], groups, control, c) for c in ("corrected_gap", "gap")],
                         ignore_index=True)
        if heading:  # the tests stay, read under the heading: they compare the model's errors between groups
            comp.insert(0, "model", "uninformative")
        atomic_write_text(out / "group_comparison.tsv", comp.to_csv(sep="\t", index=False, float_format="%.6g"))
        atomic_write_bytes(out / "gap_by_group.png", figures.gap_by_group(table, groups,
                                                                          title=heading + "brain-age gap by group"))
        summary["group_column"], summary["control"] = group_column, control
        summary["group_comparison"] = comp.to_dict("records")
    summary["provenance"] = provenance(seed, {"correction": fitted.correction, "folds": fitted.folds,
                                              "age_column": age_column, "reference_where": reference_where})
    _write_json(out / "brain_age.json", summary)
    return summary


def site_balanced_accuracy(X: np.ndarray, sites: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Balanced accuracy of a logistic site classifier (standardised features, C = 1), ``folds``-fold
    stratified CV: a quick check of how much site information a table holds (chance = 1 / n_sites)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    sites = np.asarray(sites).astype(str)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    with threadpool_limits(1):
        pred = cross_val_predict(clf, X, sites, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return float(balanced_accuracy_score(sites, pred))


def _site_check(before: pd.DataFrame, after: pd.DataFrame, sites, folds: int, seed: int, what: str) -> dict | None:
    """Site-probe balanced accuracy before and after harmonisation (None when a site has < ``folds`` subjects)."""
    from anatlearn.evaluate import chance

    sites = pd.Series(sites).astype(str).to_numpy()
    counts = pd.Series(sites).value_counts()
    if len(counts) < 2 or counts.min() < folds:
        return None
    check = {"what": f"{folds}-fold CV balanced accuracy of a logistic site classifier (C = 1) on {what}",
             "before": site_balanced_accuracy(before.to_numpy(), sites, folds, seed),
             "after": site_balanced_accuracy(after.to_numpy(), sites, folds, seed), "chance": 1.0 / len(counts),
             "n_subjects": len(sites), "n_per_site": {str(k): int(v) for k, v in counts.items()}}
    # no interval here: "below chance" means by more than 2 SD of random guessing over these subjects
    low = [when for when in ("before", "after") if chance.below_chance(check[when], check["chance"],
                                                                        class_counts=counts.to_numpy())]
    if low:
        per_site = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()} to {counts.max()}"
        check["note"] = (f"site probe on {what} {' and '.join(low)} ComBat "
                         f"({', '.join(f'{check[w]:.3f}' for w in low)}) is below chance {check['chance']:.3f} by "
                         f"more than {chance.margin(counts.to_numpy()):.3f} (2 SD of random guessing over "
                         f"{len(sites)} subjects in {len(counts)} sites, {per_site} per site): "
                         + chance.note("site").removeprefix("below chance: "))
    return check


def run_harmonize(out, features, participants, reference=None, reference_participants=None, model=None,
                  covariates: Sequence[str] = (), categorical: Sequence[str] | None = None, site_column: str = "site",
                  eb: bool = True, check_folds: int = 5, seed: int = 0) -> dict:
    """Fit ComBat on ``reference`` (or load ``model``), harmonise the cohort, write OUT/features.parquet."""
    out = Path(out)
    if (reference is None) == (model is None):
        raise ConfigError("give either `reference` (with `reference_participants`) to fit ComBat or `model` to "
                          "re-apply a saved one")
    X, labels, inputs = _load_pair(features, participants, "features")
    inputs = {"features": inputs, "participants": labels.attrs.get("source")}
    if model is None:
        if reference_participants is None:
            raise ConfigError("`reference` needs `reference_participants` (its sites and covariates)")
        R, ref_labels, inputs["reference"] = _load_pair(reference, reference_participants, "reference")
        check_same_encoder(identity_of(R), X, f"the reference {_name(reference)}", _name(features), warn=False)
        ref_rows, ref_source = ref_labels.loc[R.index], f"reference {reference if not isinstance(reference, pd.DataFrame) else ''}".strip()
        missing = [c for c in [site_column, *covariates] if c not in ref_rows.columns]
        if missing:
            raise DataError(f"{ref_source}: column(s) {', '.join(missing)} not found "
                            f"(columns: {', '.join(map(str, ref_rows.columns[:12]))})")
        harmoniser = ComBat(categorical, eb)._fit(R, ref_rows[site_column], ref_rows[list(covariates)] if covariates else None,
                                                  ref_source).harmonizer_
        harmoniser.encoder_identity_ = identity_of(R)  # checked when the saved model is re-applied
        out.mkdir(parents=True, exist_ok=True)
        harmoniser.save(out / "combat_model.npz")
        ref_check = _site_check(R, harmoniser.transform(R, ref_labels.loc[R.index]),
                                ref_labels.loc[R.index, site_column], check_folds, seed, "the reference itself")
    else:
        harmoniser = ComBatHarmonizer.load(model)
        check_same_encoder(harmoniser.encoder_identity_, X, f"ComBat model {model}", _name(features))
        out.mkdir(parents=True, exist_ok=True)
    source = str(features) if not isinstance(features, pd.DataFrame) else "features"
    H = harmoniser.transform(X, labels.loc[X.index], source=source)
    write_features(H, out / "features.parquet")
    summary = {**harmoniser.describe(), "n_subjects": len(H), "encoder": _encoder_of(X),
               "features": "features.parquet",  # beside this file (the folder may be renamed into place)
               "model": str(model or "combat_model.npz"), "inputs": inputs}
    check = _site_check(X, H, labels.loc[X.index, harmoniser.site_column], check_folds, seed, "this cohort")
    if check:
        summary["site_check"] = check
    if model is None and ref_check:
        summary["reference_site_check"] = ref_check
        excess = ref_check["before"] - ref_check["chance"]  # site information above chance before ComBat
        if excess >= 0.1 and ref_check["after"] > ref_check["before"] - 0.5 * excess:
            # ComBat fitted on these very subjects should take a linear site probe most of the way to chance
            summary["warning"] = (
                f"ComBat left most of the site information in its own reference (site probe balanced accuracy "
                f"{ref_check['before']:.3f} -> {ref_check['after']:.3f}, chance {ref_check['chance']:.3f})" + (
                    ": the empirical-Bayes prior shrinks each feature's site effect towards the mean over features, "
                    "so small, feature-specific effects (common in learned embeddings) are left uncorrected; try --no-eb"
                    if eb else ""))
    # every caveat, one line each; "warning" joins them for readers (the CLI) that print one string
    summary["warnings"] = [w for w in (summary.pop("warning", None), (check or {}).get("note"),
                                       (summary.get("reference_site_check") or {}).get("note")) if w]
    if summary["warnings"]:
        summary["warning"] = "; ".join(summary["warnings"])
    summary["cohort"] = cohort_name(labels)
    summary["provenance"] = provenance(seed, {"covariates": list(covariates), "site_column": site_column, "eb": eb})
    _write_json(out / "harmonize.json", summary)
    return summary


def _explained_encoder(table: pd.DataFrame, features, weights) -> None:
    """The probe of ``explain`` must be fitted on the explained encoder's own features: weight hashes are
    compared (:mod:`anatlearn.data.lineage`); a table without an identity falls back to its checkpoint path."""
    if identity_of(table) is not None:
        from anatlearn.data.lineage import encoder_identity
        from anatlearn.models import load_pretrained

        expected = encoder_identity(load_pretrained(weights), str(weights))
        check_same_encoder(expected, table, f"`weights` {weights} (the explained encoder)", _name(features))
        return
    made_by = str(table.attrs.get("metadata", {}).get("checkpoint", ""))
    if made_by and Path(made_by).is_file() and Path(str(weights)).is_file() \
            and not os.path.samefile(made_by, str(weights)):
        raise DataError(f"`features` {features} were embedded with {made_by}, not with `weights` {weights}; the "
                        f"probe must be fitted on the explained encoder's own features")


def run_explain(out, weights, data, task: str, tasks: str = "synthetic", participants=None, features=None,
                atlas: str | None = "auto", grid: int = 4, explain: int = 48, n_steps: int = 32, batch_size: int = 8,
                seed: int = 0, progress=None, device: str = "cpu") -> dict:
    """Fit the probe of one task on frozen features and write its region maps (see clinical.explain)."""
    from anatlearn.clinical.atlas import resolve_atlas
    from anatlearn.clinical.explain import explain_regions
    from anatlearn.data import open_dataset
    from anatlearn.evaluate import load_tasks

    if explain < 1:
        raise ConfigError(f"`explain` (subjects attributed) must be >= 1, got {explain}")
    dataset = open_dataset(data, require_age=False)
    labels = read_participants(participants if participants is not None else data)
    (the_task,) = load_tasks(tasks, select=[task])
    y = the_task.select(labels)
    ids = dataset.participants["participant_id"].astype(str).tolist()
    position = {pid: i for i, pid in enumerate(ids)}
    y = y[[pid in position for pid in y.index]]
    if len(y) < 4:
        raise DataError(f"task {task}: {len(y)} subjects of {data} have images; need at least 4 to fit a probe")
    subset = dataset.subset([position[pid] for pid in y.index])
    feats = None
    if features is not None:
        table = features if isinstance(features, pd.DataFrame) else read_features(features)
        _explained_encoder(table, features, weights)
        missing = [pid for pid in y.index if pid not in table.index]
        if missing:
            raise DataError(f"`features` {features}: no features for {len(missing)} subject(s) of task {task} "
                            f"(e.g. {missing[0]})")
        feats = table.loc[y.index].to_numpy()
    shape = np.asarray(subset.volume(0)).shape[-3:]
    regions = resolve_atlas(atlas, shape, data, grid, getattr(dataset, "affine", None))
    result = explain_regions(weights, subset, y.to_numpy(), kind=the_task.kind, features=feats, atlas=regions,
                             ids=list(y.index), explain=explain, n_steps=n_steps, batch_size=batch_size, seed=seed,
                             progress=progress, device=device)
    result.info.update({"task": task, "weights": str(weights), "data": str(data),
                        "disease": next((d for d in the_task.positive if d in regions.truth), None)})
    return result.write(out, title=f"{task}: region importance")
