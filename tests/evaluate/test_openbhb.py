"""The OpenBHB protocol on generated features whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from anatlearn.errors import DataError
from anatlearn.evaluate import challenge_score, evaluate_openbhb, make_feature_table

NOISE_SD = 2.0


def _value(results, method, metric):
    t = results.table
    return t[(t.method == method) & (t.metric == metric)].iloc[0]


def test_age_features_give_noise_level_mae_and_site_free_features_chance_bacc(openbhb_like):
    p = openbhb_like
    rng = np.random.default_rng(3)
    n = len(p)
    # column 0 encodes age linearly with Gaussian noise; 7 columns of pure noise; no site information
    x = np.c_[0.5 * p["age"].to_numpy() + rng.normal(0, 0.5 * NOISE_SD, n), rng.normal(size=(n, 7))]
    res = evaluate_openbhb({"linear": make_feature_table(x, p.index)}, p, n_boot=200)
    expected_mae = NOISE_SD * math.sqrt(2 / math.pi)  # E|N(0, sd^2)| = sd sqrt(2/pi) = 1.60 years
    for metric in ("mae_internal", "mae_external"):
        row = _value(res, "linear", metric)
        assert row["mean"] == pytest.approx(expected_mae, rel=0.2)
        assert row["ci_low"] < row["mean"] < row["ci_high"]
    bacc = _value(res, "linear", "balanced_accuracy_internal")["mean"]
    chance = res.extra["linear"]["chance_balanced_accuracy"]
    assert chance == pytest.approx(0.25)  # 4 training sites
    assert abs(bacc - chance) < 0.12
    score = _value(res, "linear", "score")["mean"]
    assert score == pytest.approx(bacc**0.3 * _value(res, "linear", "mae_external")["mean"])


def test_site_features_are_detected_and_predictions_are_returned(openbhb_like):
    p = openbhb_like
    rng = np.random.default_rng(4)
    onehot = pd.get_dummies(p["site"]).to_numpy(float)
    x = np.c_[3 * onehot + rng.normal(0, 0.5, onehot.shape), rng.normal(size=(len(p), 3))]
    noise = make_feature_table(rng.normal(size=(len(p), 8)), p.index)
    res = evaluate_openbhb({"site": make_feature_table(x, p.index), "noise": noise}, p, n_boot=100)
    assert _value(res, "site", "balanced_accuracy_internal")["mean"] > 0.95
    assert _value(res, "noise", "balanced_accuracy_internal")["mean"] < 0.4
    # noise features predict ~the training mean age: MAE near the mean absolute deviation of the ages
    ext = p[p.split == "external_test"]["age"]
    mad = (ext - p[p.split == "train"]["age"].mean()).abs().mean()
    assert _value(res, "noise", "mae_external")["mean"] == pytest.approx(mad, rel=0.15)
    pred = res.predictions
    assert set(pred.method) == {"site", "noise"} and len(pred) == 2 * len(p)
    cm = np.array(res.extra["site"]["site_confusion"]["matrix"])
    assert cm.shape == (4, 4) and cm.sum() == (p.split == "internal_test").sum()


def test_challenge_score_formula():
    assert challenge_score(0.051, 3.761) == pytest.approx(1.540, abs=0.002)  # ISBI 2023 ExpW row (SPEC s.6)


def test_bad_inputs(openbhb_like):
    p = openbhb_like
    f = make_feature_table(np.random.default_rng(0).normal(size=(len(p), 3)), p.index)
    with pytest.raises(DataError, match="'split'"):
        evaluate_openbhb(f, p.drop(columns="split"))
    bad = p.copy()
    bad.loc[bad.index[0], "split"] = "validation"
    with pytest.raises(DataError, match="validation"):
        evaluate_openbhb(f, bad)
    few = p.copy()
    few.loc[few.index[:3], "site"] = "rare"
    few.loc[few.index[:3], "split"] = "train"
    with pytest.raises(DataError, match="'rare' has 3 training subjects"):
        evaluate_openbhb(f, few)
    other = make_feature_table(np.zeros((2, 3)), ["x", "y"])
    with pytest.raises(DataError, match="no participant id in common"):
        evaluate_openbhb(other, p)
