"""ComBat fitted inside cross-validation folds (no leak), BrainAge's gap, LinearProbe = the probe of evaluate tasks."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from anatlearn.clinical.brain_age import BrainAgeModel, fit_bias
from anatlearn.clinical.combat import ComBatHarmonizer
from anatlearn.estimators import BrainAge, ComBat, LinearProbe, load_linear_probe


@pytest.fixture(autouse=True)
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def site_cohort(seed=0, n_sites=12, per_site=6, n_features=40):
    """Features = weak age signal + large per-site offsets + noise, few subjects per site: a site's offset
    estimated from its test subjects too (ComBat before CV) removes it better than from the training folds."""
    rng = np.random.default_rng(seed)
    sites = np.repeat([f"s{i:02d}" for i in range(n_sites)], per_site)
    age = rng.uniform(20, 80, len(sites))
    offsets = rng.normal(0, 3.0, (n_sites, n_features))[np.repeat(np.arange(n_sites), per_site)]
    X = np.outer(age - 50, rng.normal(0, 0.02, n_features)) + offsets + rng.normal(0, 1.0, (len(sites), n_features))
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, sites))
    return X, age, sites, folds


def test_combat_is_fitted_on_training_folds_only():
    X, age, sites, folds = site_cohort()
    inside = cross_val_score(make_pipeline(ComBat(), RidgeCV()), X, age, params={"sites": sites}, cv=folds)
    by_hand = []
    for train, test in folds:  # the same thing written out: ComBat and ridge see the training fold only
        h = ComBatHarmonizer().fit(X[train], pd.DataFrame({"site": sites[train]}))
        ridge = RidgeCV().fit(h.transform(X[train], pd.DataFrame({"site": sites[train]})), age[train])
        by_hand.append(ridge.score(h.transform(X[test], pd.DataFrame({"site": sites[test]})), age[test]))
    np.testing.assert_allclose(inside, by_hand, rtol=1e-10)
    before = cross_val_score(RidgeCV(), ComBat().fit_transform(X, sites=sites), age, cv=folds)  # the leak
    print(f"R^2 with ComBat fitted before CV (leak): {before.mean():.3f}; inside the folds: {inside.mean():.3f}")
    assert abs(before.mean() - inside.mean()) > 0.01  # the two procedures give measurably different scores
    # What leaks: with ComBat fitted before CV, the training subjects' harmonised features depend on the test
    # subjects' images; fitted inside the folds, they do not.
    train, test = folds[0]
    moved = X.copy()
    moved[test] += np.random.default_rng(1).normal(0, 2.0, moved[test].shape)
    pre_cv = [ComBat().fit_transform(data, sites=sites)[train] for data in (X, moved)]
    in_fold = [ComBat().fit(data[train], sites=sites[train]).transform(data[train], sites=sites[train])
               for data in (X, moved)]
    assert np.abs(pre_cv[0] - pre_cv[1]).max() > 0.1
    np.testing.assert_array_equal(in_fold[0], in_fold[1])


def test_combat_covariates_are_routed_and_preserved():
    X, age, sites, folds = site_cohort(1)
    covariates = pd.DataFrame({"age": age})
    est = ComBat().fit(X, sites=sites, covariates=covariates)
    ref = ComBatHarmonizer(["age"]).fit(X, pd.DataFrame({"site": sites, "age": age}))
    np.testing.assert_allclose(est.transform(X, sites=sites, covariates=covariates),
                               ref.transform(X, pd.DataFrame({"site": sites, "age": age})), rtol=1e-12)
    assert list(est.sites_) == sorted(set(sites))
    table = pd.DataFrame(X, columns=[f"f{i:04d}" for i in range(40)])
    frame = ComBat().set_output(transform="pandas").fit_transform(table, sites=sites, covariates=covariates)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns[:2]) == ["f0000", "f0001"]
    np.testing.assert_allclose(frame.to_numpy(), est.transform(X, sites=sites, covariates=covariates))


def test_brain_age_gap_uses_the_training_correction():
    X, age, sites, folds = site_cohort(2, n_features=10)
    X = X + np.outer(age - 50, np.linspace(0.05, 0.3, 10))  # a usable age signal
    train, test = folds[0]
    est = BrainAge().fit(X[train], age[train])
    model = BrainAgeModel().fit(X[train], age[train])
    a, b = fit_bias(age[train], model.reference_cv_pred_)  # the correction: training folds' CV predictions only
    np.testing.assert_allclose(est.predict(X[test]), model.predict(X[test]))
    np.testing.assert_allclose(est.gap(X[test], age[test]), (model.predict(X[test]) - a * age[test] - b) / a,
                               rtol=1e-9)
    assert est.informative_ == (est.r2_cv_ >= 0.5 and est.mae_cv_ <= 0.5 * np.std(age[train], ddof=1))
    scores = cross_val_score(BrainAge(), X, age, cv=3)
    assert np.isfinite(scores).all()


def test_uninformative_brain_age_is_said(tmp_path, capsys):
    import json

    from anatlearn.cli import main
    from anatlearn.features import make_feature_table, write_features

    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(60)]
    age = rng.uniform(20, 80, 60)
    X = np.outer(age - 50, np.full(8, 0.02)) + rng.normal(0, 1.0, (60, 8))  # age explains little of X
    write_features(make_feature_table(X, ids), tmp_path / "f.parquet")
    pd.DataFrame({"participant_id": ids, "age": age, "diagnosis": np.where(np.arange(60) % 2, "AD", "CN")}).to_csv(
        tmp_path / "participants.tsv", sep="\t", index=False)
    code = main(["brain-age", "--reference", str(tmp_path / "f.parquet"), "--reference-participants",
                 str(tmp_path / "participants.tsv"), "--features", str(tmp_path / "f.parquet"), "--participants",
                 str(tmp_path / "participants.tsv"), "--group-column", "diagnosis", "--out", str(tmp_path / "out")])
    assert code == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("UNINFORMATIVE MODEL: the age model is uninformative: cross-validated R^2")
    summary = json.loads((tmp_path / "out" / "brain_age.json").read_text())
    assert summary["reference"]["informative"] is False and summary["reference"]["r2_reference_cv"] < 0.5
    assert summary["uninformative"] in first
    comparison = pd.read_csv(tmp_path / "out" / "group_comparison.tsv", sep="\t")
    assert set(comparison["model"]) == {"uninformative"}


def test_saved_probe_loads_as_a_fitted_linear_probe(tiny_downstream, tmp_path):
    from anatlearn.evaluate import load_tasks, read_participants
    from anatlearn.evaluate.saved_probes import apply_probe, load_probe, save_probes
    from anatlearn.features import make_feature_table

    labels = read_participants(tiny_downstream)
    rng = np.random.default_rng(0)
    table = make_feature_table(rng.normal(size=(len(labels), 6)), labels.index)
    (task,) = load_tasks("synthetic", select=["AD-like-vs-CN"])
    (path,) = save_probes({"m": table}, labels, [task], tmp_path)
    probe = load_linear_probe(path)
    np.testing.assert_allclose(probe.predict_proba(table), apply_probe(load_probe(path), table, "t"), rtol=1e-12)
    y = task.select(labels)
    fitted = LinearProbe("classification").fit(table.loc[y.index], y.to_numpy())
    np.testing.assert_allclose(probe.predict_proba(table), fitted.predict_proba(table), rtol=1e-9)
    assert probe.penalty_ == fitted.penalty_
