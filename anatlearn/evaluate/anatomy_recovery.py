"""Anatomy-recovery probes and the effective rank of a representation.

*Anatomy recovery* asks directly whether frozen features encode regional anatomy, which is what AnatCL's
anatomical term is meant to teach (Barbano et al.). For each target column t (e.g. the true log grey-matter
volume of one Desikan region) a ridge regression is fitted from the features to t on the training folds of
a shuffled K-fold split over subjects and predicts the held-out fold. With the out-of-fold predictions
``yhat`` pooled over the K folds,

    R^2_t = 1 - sum_i (y_it - yhat_it)^2 / sum_i (y_it - mean(y_t))^2,

so R^2 is 1 for perfect recovery, about 0 for features that carry nothing about t, and can be negative.
Inside each fold the features are standardised with the training part's statistics (held-out values
clipped to the training range widened by one sd, so that a feature almost constant in training cannot
explode on a held-out subject) and the ridge penalty is chosen per target by efficient leave-one-out on the
training part (:class:`sklearn.linear_model.RidgeCV`, generalised cross-validation). The summary is the
mean and median of R^2_t over targets.

*Effective rank* is RankMe (Garrido, Balestriero, Najman & LeCun, "RankMe: Assessing the downstream
performance of pretrained self-supervised representations by their rank", ICML 2023): with singular values
s_1..s_m of the (n x d) embedding matrix,

    p_k = s_k / sum_j s_j + eps,    RankMe = exp(-sum_k p_k log p_k),   eps = 1e-7,

a smooth count of the dimensions the representation uses (d for isotropic features, r for rank r,
1 when it has collapsed onto a line). Like the paper we use the raw embedding matrix, not centred: a
representation whose variance collapsed but whose mean is large then scores about 1, which is the collapse
we want to see. ``center=True`` gives the rank of the subject-to-subject variation alone.

:func:`truth_targets` reads the targets of a synthetic cohort (``truth/anatomy.npy`` and
``truth/latents.tsv``, see docs/synthetic.md); for real data a FreeSurfer table of regional measures plays
the same role (:func:`read_targets`).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from anatlearn.data.tables import ID, normalise_ids
from anatlearn.errors import ConfigError, DataError, listed
from anatlearn.evaluate.results import TABLE_COLUMNS, Results
from anatlearn.features import validate_features
from anatlearn.data.lineage import tables_identity
from anatlearn.provenance import provenance

# Wider than the probes' 10^[-2..2]: features may have thousands of columns (pooled voxels) next to a few
# hundred subjects, where the best penalty on standardised features is large.
DEFAULT_ALPHAS = tuple(10.0 ** np.arange(-2, 6.5, 0.5))
RANKME_EPS = 1e-7
CLIP_MARGIN = 1.0  # held-out z-scores are clipped to [training min - 1, training max + 1]
CHANNELS = ("CT", "GMV", "SA")  # order of the last axis of truth/anatomy.npy
NOT_LATENT = {"severity", "age", "eps_seed"}  # numeric columns of latents.tsv that are not latent factors


def _as_matrix(x, name: str) -> tuple[np.ndarray, pd.Index | None, list[str]]:
    """Array view of a 2-D array or DataFrame, its ids (DataFrame index) and column names."""
    if isinstance(x, pd.Series):
        x = x.to_frame()
    if isinstance(x, pd.DataFrame):
        non_numeric = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
        if non_numeric:
            raise DataError(f"{name} has non-numeric columns: {listed(non_numeric, 5)}")
        return x.to_numpy(dtype=np.float64), normalise_ids(x.index), [str(c) for c in x.columns]
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{name} must be 2-D (subjects x columns), got shape {arr.shape}")
    return arr, None, [str(i) for i in range(arr.shape[1])]


def _check_finite(arr: np.ndarray, ids, cols, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows, colsi = np.nonzero(bad)
        who = ids[rows[0]] if ids is not None else f"row {rows[0]}"
        raise DataError(f"{name} has {int(bad.any(axis=1).sum())} subjects with NaN/inf values "
                        f"(e.g. subject {who}, column {cols[colsi[0]]})")


def _aligned(features, targets) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features and targets as matrices over the same subjects (by id when both are DataFrames)."""
    x, x_ids, x_cols = _as_matrix(features, "features")
    y, y_ids, y_cols = _as_matrix(targets, "targets")
    if x_ids is not None and y_ids is not None:
        missing = x_ids[~x_ids.isin(y_ids)]
        if len(missing):
            raise DataError(f"targets lack {len(missing)} of the {len(x_ids)} subjects with features "
                            f"(e.g. {', '.join(map(str, missing[:3]))})")
        if y_ids.has_duplicates:
            dup = y_ids[y_ids.duplicated()][:3]
            raise DataError(f"targets have duplicate participant ids: {', '.join(map(str, dup))}")
        y = y[y_ids.get_indexer(x_ids)]
        y_ids = x_ids
    elif x.shape[0] != y.shape[0]:
        raise DataError(f"features have {x.shape[0]} subjects but targets have {y.shape[0]} "
                        f"(shapes {x.shape} and {y.shape})")
    if x.shape[1] == 0 or y.shape[1] == 0:
        raise DataError(f"features ({x.shape[1]} columns) and targets ({y.shape[1]} columns) must not be empty")
    _check_finite(x, x_ids, x_cols, "features")
    _check_finite(y, y_ids if y_ids is not None else x_ids, y_cols, "targets")
    flat = np.ptp(y, axis=0) == 0
    if flat.any():
        raise DataError(f"target column {y_cols[int(np.argmax(flat))]} is constant over the subjects; "
                        f"R^2 is undefined for it (drop it)")
    return x, y, y_cols


def anatomy_recovery(features, targets, n_splits: int = 5, seed: int = 0, alphas=None) -> dict:
    """Cross-validated ridge R^2 from frozen ``features`` to each column of ``targets`` (formula above).

    ``features``: (n, d) array or feature table; ``targets``: (n, T) array or DataFrame. When both are
    DataFrames the targets are aligned to the features' ``participant_id`` index (every featured subject
    needs a target row); otherwise rows correspond. Folds: ``KFold(n_splits, shuffle=True, seed)``.

    Returns ``{"r2_mean", "r2_median", "r2_per_target" (array, targets' column order), "targets" (names),
    "n", "n_splits"}``.
    """
    if int(n_splits) != n_splits or n_splits < 2:
        raise ConfigError(f"anatomy recovery needs n_splits >= 2 folds, got {n_splits}")
    x, y, names = _aligned(features, targets)
    n = x.shape[0]
    if n < 2 * n_splits:
        raise DataError(f"anatomy recovery: {n} subjects is too few for {n_splits}-fold cross-validation "
                        f"(need at least {2 * n_splits})")
    grid = np.asarray(DEFAULT_ALPHAS if alphas is None else alphas, dtype=np.float64).ravel()
    if grid.size == 0 or not np.all(np.isfinite(grid)) or (grid <= 0).any():
        raise ConfigError(f"ridge alphas must be positive finite numbers, got {list(grid)}")
    pred = np.empty_like(y)
    # One BLAS thread: small matrices, and a shared busy CPU (see probes.cross_validate).
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for train, test in KFold(n_splits, shuffle=True, random_state=seed).split(x):
            scaler = StandardScaler().fit(x[train])
            z_train = scaler.transform(x[train])
            # Held-out features clipped to the training range widened by one training sd (CLIP_MARGIN): a
            # nearly dead ReLU unit (non-zero in one training subject) gets a tiny training sd, and a held-out
            # subject where it fires would otherwise reach z ~ 1000 and wreck every prediction (measured: mean
            # R^2 -7 instead of 0.69). The margin leaves ordinary features alone even with few subjects.
            z_test = np.clip(scaler.transform(x[test]), z_train.min(axis=0) - CLIP_MARGIN,
                             z_train.max(axis=0) + CLIP_MARGIN)
            model = RidgeCV(alphas=grid, alpha_per_target=y.shape[1] > 1)
            model.fit(z_train, y[train])
            pred[test] = model.predict(z_test).reshape(len(test), -1)
    sse = ((y - pred) ** 2).sum(axis=0)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - sse / sst
    return {"r2_mean": float(r2.mean()), "r2_median": float(np.median(r2)), "r2_per_target": r2,
            "targets": names, "n": int(n), "n_splits": int(n_splits)}


def effective_rank(features, center: bool = False) -> float:
    """RankMe of an (n, d) feature matrix: exp of the entropy of its normalised singular values (see top).

    Raw matrix by default, as in Garrido et al. (2023); ``center=True`` removes the column means first.
    """
    x, ids, cols = _as_matrix(features, "features")
    if x.size == 0:
        raise DataError(f"effective rank of an empty feature matrix (shape {x.shape})")
    _check_finite(x, ids, cols, "features")
    if center:
        x = x - x.mean(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    if s.sum() == 0:
        raise DataError("effective rank of an all-zero feature matrix is undefined")
    p = s / s.sum() + RANKME_EPS
    return float(np.exp(-(p * np.log(p)).sum()))


def _region_names(truth: Path, k: int) -> list[str]:
    try:
        names = json.loads((truth / "world.json").read_text()).get("region_names")
    except (OSError, ValueError):
        names = None
    return [str(r) for r in names] if isinstance(names, list) and len(names) == k else [f"r{i:02d}" for i in range(k)]


def _latent_columns(table: pd.DataFrame) -> list[str]:
    """Numeric latent-factor columns (u0.., v0.. and any new factor family), not severity or demographics."""
    return [c for c in table.columns if c not in NOT_LATENT and pd.api.types.is_numeric_dtype(table[c])]


def truth_targets(cohort_root: str | os.PathLike, ids=None) -> dict[str, pd.DataFrame]:
    """Anatomy-recovery targets of a synthetic cohort, from its noise-free truth.

    Returns ``{"GMV", "CT", "SA"}``: natural log of each region's true value (columns named by region),
    and ``"latents"``: the latent anatomical factors of ``truth/latents.tsv`` (``u*``, ``v*``: all numeric
    columns except severity), every table indexed by ``participant_id``; restricted to and ordered as
    ``ids`` when given (an id without truth is an error).
    """
    truth = Path(cohort_root) / "truth"
    anatomy_path, latents_path = truth / "anatomy.npy", truth / "latents.tsv"
    for p in (anatomy_path, latents_path):
        if not p.is_file():
            raise DataError(f"cohort {cohort_root} has no ground truth: {p} not found "
                            f"(only synthetic cohorts from `anatlearn synth` have truth/)")
    try:
        anatomy = np.load(anatomy_path, allow_pickle=False)
        latents = pd.read_csv(latents_path, sep="\t", dtype={ID: str})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the truth of cohort {cohort_root}: {exc}") from None
    if anatomy.ndim != 3 or anatomy.shape[2] != len(CHANNELS):
        raise DataError(f"{anatomy_path} must have shape (subjects, regions, 3: CT, GMV, SA), got {anatomy.shape}")
    if ID not in latents.columns:
        raise DataError(f"{latents_path} has no {ID!r} column")
    if len(latents) != anatomy.shape[0]:
        raise DataError(f"{latents_path} has {len(latents)} subjects but {anatomy_path} has {anatomy.shape[0]}")
    if not np.all(np.isfinite(anatomy)) or (anatomy <= 0).any():
        raise DataError(f"{anatomy_path} holds non-positive or non-finite values; cannot take logs")
    index = normalise_ids(latents.pop(ID))
    regions = _region_names(truth, anatomy.shape[1])
    out = {name: pd.DataFrame(np.log(anatomy[:, :, c].astype(np.float64)), index=index, columns=regions)
           for c, name in enumerate(CHANNELS)}
    lat_cols = _latent_columns(latents)
    if not lat_cols:
        raise DataError(f"{latents_path} has no latent factor columns (expected u0, v0, ...)")
    out["latents"] = latents[lat_cols].astype(np.float64).set_axis(index, axis=0)
    out = {k: out[k] for k in ("GMV", "CT", "SA", "latents")}
    if ids is not None:
        wanted = normalise_ids(ids)
        missing = wanted[~wanted.isin(index)]
        if len(missing):
            raise DataError(f"{len(missing)} subjects have no truth in {truth} (e.g. {', '.join(missing[:3])})")
        out = {k: v.loc[wanted] for k, v in out.items()}
    for table in out.values():
        table.attrs["source"] = str(cohort_root)  # the cohort the results came from, named in the report
    return out


def read_targets(path: str | os.PathLike) -> pd.DataFrame:
    """A user's table of anatomical targets (``.tsv``/``.csv``/``.parquet``; ``participant_id`` and numeric
    columns, e.g. FreeSurfer regional volumes): the real-data analogue of :func:`truth_targets`.

    Non-numeric columns other than the id are an error naming them (drop them or select columns first).
    """
    from anatlearn.data.tables import read_participants

    table = read_participants(path)
    bad = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise DataError(f"anatomy targets {path}: non-numeric columns {listed(bad, 5)}")
    if table.shape[1] == 0:
        raise DataError(f"anatomy targets {path} has no target columns besides {ID}")
    return table.astype(np.float64)



ANATOMY_TASK = "anatomy recovery"
RANK_TASK = "effective rank"


def evaluate_anatomy(features: Mapping[str, pd.DataFrame], targets: Mapping[str, pd.DataFrame],
                     n_splits: int = 5, seed: int = 0, alphas=None) -> Results:
    """Anatomy recovery of every feature table (method) for every target family, plus RankMe.

    ``features``: method -> feature table; ``targets``: family name (e.g. ``GMV``, ``CT``, ``SA``,
    ``latents``, or a user table's name) -> DataFrame indexed by participant_id. Every method is probed on
    the subjects that have features in every table and a row in every target table, with the same folds.
    Tidy rows: task ``anatomy recovery``, metric ``r2_<family>`` (mean R^2 over the family's columns);
    task ``effective rank``, metrics ``rankme`` (raw matrix, as in the paper) and ``rankme_centred``. No
    interval (one split, one seed): ``ci_low``/``ci_high`` are NaN; per-target R^2 are kept in
    ``extra["per_target"]``.
    """
    if not features:
        raise ConfigError("no feature table given")
    if not targets:
        raise ConfigError("no anatomy targets given")
    tables = {m: validate_features(f, m) for m, f in features.items()}
    ids = None
    for name, t in [*tables.items(), *targets.items()]:
        idx = normalise_ids(t.index)
        ids = idx if ids is None else ids[ids.isin(idx)]
    if ids is None or len(ids) == 0:
        raise DataError(f"no subject has both features ({', '.join(tables)}) and anatomy targets "
                        f"({', '.join(targets)})")
    fams = {fam: t.set_axis(normalise_ids(t.index), axis=0).loc[ids] for fam, t in targets.items()}
    rows, per_target = [], {}
    for method, f in tables.items():
        x = f.loc[ids]
        per_target[method] = {}
        for fam, y in fams.items():
            res = anatomy_recovery(x, y, n_splits=n_splits, seed=seed, alphas=alphas)
            per_target[method][fam] = dict(zip(res["targets"], np.round(res["r2_per_target"], 5).tolist()))
            rows.append(_row(method, ANATOMY_TASK, f"r2_{fam}", res["r2_mean"], len(ids)))
        rows.append(_row(method, RANK_TASK, "rankme", effective_rank(x), len(ids)))
        rows.append(_row(method, RANK_TASK, "rankme_centred", effective_rank(x, center=True), len(ids)))
    config = {"n_splits": n_splits, "alphas": list(map(float, DEFAULT_ALPHAS if alphas is None else alphas)),
              "targets": {fam: list(map(str, y.columns)) for fam, y in fams.items()}, "n_subjects": len(ids),
              "n_features": {m: int(f.shape[1]) for m, f in tables.items()},  # RankMe's maximum: min(subjects, this)
              "cohort": next((str(t.attrs["source"]) for t in targets.values() if t.attrs.get("source")), None)}
    return Results(kind="anatomy", table=pd.DataFrame(rows, columns=TABLE_COLUMNS),
                   extra={"per_target": per_target}, provenance=provenance(seed, config),
                   inputs={"features": tables_identity(features), "targets": config["cohort"]})


def _row(method: str, task: str, metric: str, value: float, n: int) -> dict:
    return {"method": method, "task": task, "metric": metric, "mean": float(value), "ci_low": float("nan"),
            "ci_high": float("nan"), "n": int(n), "lower_is_better": False}
