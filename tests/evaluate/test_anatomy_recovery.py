"""Anatomy-recovery probe (cross-validated ridge R^2) and RankMe effective rank on matrices of known structure."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from anatlearn.errors import ConfigError, DataError
from anatlearn.evaluate import anatomy_recovery, effective_rank, truth_targets
from anatlearn.evaluate.anatomy_recovery import read_targets


def _linear_world(n=300, d=40, t=12, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, t)) + noise * rng.normal(size=(n, t))
    return x, y


def test_features_that_contain_the_truth_recover_it():
    x, y = _linear_world()
    res = anatomy_recovery(x, y)
    assert res["n"] == 300 and len(res["r2_per_target"]) == 12
    assert res["r2_mean"] > 0.95 and min(res["r2_per_target"]) > 0.95
    assert res["r2_median"] == pytest.approx(np.median(res["r2_per_target"]))


def test_noise_features_recover_nothing():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 40))
    y = rng.normal(size=(300, 12))
    res = anatomy_recovery(x, y)
    assert res["r2_mean"] < 0.05 and abs(res["r2_mean"]) < 0.1


def test_partial_information_is_graded():
    """A target half explained by the features gets R^2 near its explained share (0.5), not 0 or 1."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 10))
    signal = x @ rng.normal(size=10)
    y = signal / signal.std() + rng.normal(size=600)  # var(signal) = var(noise): R^2 ceiling 0.5
    r2 = anatomy_recovery(x, y)["r2_mean"]
    assert 0.4 < r2 < 0.55


def test_pooled_r2_matches_a_brute_force_reference_with_a_fixed_alpha():
    """With one alpha the probe is plain ridge per fold: compare with sklearn Ridge fitted fold by fold."""
    x, y = _linear_world(n=120, d=30, t=3, noise=1.0, seed=3)
    res = anatomy_recovery(x, y, n_splits=4, seed=7, alphas=[10.0])
    pred = np.empty_like(y)
    for tr, te in KFold(4, shuffle=True, random_state=7).split(x):
        sc = StandardScaler().fit(x[tr])
        z_tr = sc.transform(x[tr])
        z_te = np.clip(sc.transform(x[te]), z_tr.min(0) - 1, z_tr.max(0) + 1)  # training range widened by 1 sd
        pred[te] = Ridge(alpha=10.0).fit(z_tr, y[tr]).predict(z_te)
    ref = 1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(res["r2_per_target"], ref, rtol=1e-8)


def test_a_nearly_dead_unit_cannot_wreck_the_probe():
    """A ReLU unit that fires faintly in one training subject and strongly in one held-out subject has a tiny
    training sd; unclipped, the held-out z-score is ~1e6 and R^2 collapses (seen on real y-Aware features)."""
    x, y = _linear_world(n=100, d=10, t=3, noise=0.1, seed=5)
    train0, test0 = next(KFold(5, shuffle=True, random_state=0).split(x))
    spike = np.zeros(100)
    spike[train0[0]], spike[test0[0]] = 1e-6, 1.0
    clean = anatomy_recovery(x, y)["r2_mean"]
    assert clean > 0.95
    assert anatomy_recovery(np.c_[x, spike], y)["r2_mean"] > clean - 0.01


def test_dataframes_are_aligned_by_participant_id():
    x, y = _linear_world(n=100, d=8, t=2, seed=4)
    ids = pd.Index([f"s{i}" for i in range(100)], name="participant_id")
    feats = pd.DataFrame(x, index=ids)
    targets = pd.DataFrame(y, index=ids, columns=["a", "b"]).iloc[::-1]  # reversed order, aligned by id
    res = anatomy_recovery(feats, targets)
    assert res["r2_mean"] > 0.95 and res["targets"] == ["a", "b"]
    np.testing.assert_allclose(res["r2_per_target"], anatomy_recovery(x, y)["r2_per_target"], rtol=1e-12)


def test_bad_inputs_raise_one_clear_error():
    x, y = _linear_world(n=40, d=5, t=2)
    with pytest.raises(DataError, match="features have 40 subjects but targets have 39"):
        anatomy_recovery(x, y[:39])
    y_nan = y.copy()
    y_nan[3, 1] = np.nan
    with pytest.raises(DataError, match="targets has 1 subjects with NaN"):
        anatomy_recovery(x, y_nan)
    with pytest.raises(DataError, match="9 subjects is too few for 5-fold"):
        anatomy_recovery(x[:9], y[:9])
    with pytest.raises(ConfigError, match="n_splits >= 2"):
        anatomy_recovery(x, y, n_splits=1)
    ids = pd.Index([f"s{i}" for i in range(40)])
    with pytest.raises(DataError, match="targets lack 1 of the 40 subjects .*s39"):
        anatomy_recovery(pd.DataFrame(x, index=ids), pd.DataFrame(y[:39], index=ids[:39]))
    const = np.c_[y, np.ones(40)]
    with pytest.raises(DataError, match="target column 2 is constant"):
        anatomy_recovery(x, const)


def test_rankme_hand_computed_3x3():
    # singular values 3, 2, 1 -> p = 1/2, 1/3, 1/6 -> entropy = (1/2)ln2 + (1/3)ln3 + (1/6)ln6 = 1.0114
    x = np.diag([3.0, 2.0, 1.0])
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]  # singular values are rotation-invariant
    expected = np.exp(0.5 * np.log(2) + np.log(3) / 3 + np.log(6) / 6)
    assert expected == pytest.approx(2.7495, abs=1e-4)
    assert effective_rank(rot @ x) == pytest.approx(expected, rel=1e-5)


def test_rankme_of_isotropic_and_low_rank_matrices():
    rng = np.random.default_rng(5)
    assert effective_rank(rng.normal(size=(4000, 32))) == pytest.approx(32, rel=0.1)
    # exact rank 5 with equal singular values: RankMe = 5
    u = np.linalg.qr(rng.normal(size=(500, 5)))[0]
    v = np.linalg.qr(rng.normal(size=(64, 5)))[0]
    assert effective_rank(u @ v.T) == pytest.approx(5, rel=1e-3)
    # a generic rank-5 matrix: at most 5, more than 3.5
    low = rng.normal(size=(500, 5)) @ rng.normal(size=(5, 64))
    assert 3.5 < effective_rank(low) <= 5.0001
    # raw (uncentred) matrix as in the paper: a large common offset looks collapsed unless centred
    shifted = rng.normal(size=(500, 16)) + 50
    assert effective_rank(shifted) < 2 and effective_rank(shifted, center=True) == pytest.approx(16, rel=0.15)
    with pytest.raises(DataError, match="all-zero"):
        effective_rank(np.zeros((4, 3)))


def test_truth_targets_of_a_synthetic_cohort(tiny_cohort):
    targets = truth_targets(tiny_cohort)
    assert list(targets) == ["GMV", "CT", "SA", "latents"]
    anatomy = np.load(tiny_cohort / "truth" / "anatomy.npy")
    latents = pd.read_csv(tiny_cohort / "truth" / "latents.tsv", sep="\t", dtype={"participant_id": str})
    np.testing.assert_allclose(targets["GMV"].to_numpy(), np.log(anatomy[:, :, 1]), rtol=1e-6)
    np.testing.assert_allclose(targets["CT"].to_numpy(), np.log(anatomy[:, :, 0]), rtol=1e-6)
    np.testing.assert_allclose(targets["SA"].to_numpy(), np.log(anatomy[:, :, 2]), rtol=1e-6)
    assert targets["GMV"].shape == (48, anatomy.shape[1])
    assert "severity" not in targets["latents"] and len(targets["latents"].columns) >= 2
    assert all(c[0] in "uv" for c in targets["latents"].columns if c[0] in "uv")
    assert list(targets["latents"].index) == list(latents["participant_id"])
    # restricted and ordered by ids
    ids = list(latents["participant_id"][[5, 2, 9]])
    sub = truth_targets(tiny_cohort, ids)
    assert list(sub["CT"].index) == ids
    np.testing.assert_allclose(sub["CT"].to_numpy(), np.log(anatomy[[5, 2, 9], :, 0]), rtol=1e-6)
    with pytest.raises(DataError, match="1 subjects have no truth .*nobody"):
        truth_targets(tiny_cohort, ids + ["nobody"])


def test_truth_targets_needs_truth_and_accepts_new_latent_families(tmp_path):
    with pytest.raises(DataError, match="has no ground truth"):
        truth_targets(tmp_path)
    (tmp_path / "truth").mkdir()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "truth" / "anatomy.npy", rng.uniform(1, 2, size=(4, 3, 3)).astype(np.float32))
    pd.DataFrame({"participant_id": ["01", "02", "03", "04"], "u0": rng.normal(size=4), "g_net1": rng.normal(size=4),
                  "severity": 0.0}).to_csv(tmp_path / "truth" / "latents.tsv", sep="\t", index=False)
    out = truth_targets(tmp_path)
    assert list(out["latents"].columns) == ["u0", "g_net1"] and list(out["GMV"].index) == ["01", "02", "03", "04"]


def test_read_targets_table(tmp_path):
    pd.DataFrame({"participant_id": ["a", "b"], "lh_x": [1.0, 2.0], "rh_x": [3.0, 4.0]}).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    assert read_targets(tmp_path / "t.tsv").shape == (2, 2)
    pd.DataFrame({"participant_id": ["a", "b"], "lh_x": [1.0, 2.0], "dx": ["AD", "CN"]}).to_csv(tmp_path / "u.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="non-numeric columns dx"):
        read_targets(tmp_path / "u.tsv")


def test_evaluate_anatomy_cli_with_truth_and_a_targets_table(tiny_cohort, tmp_path, capsys):
    from anatlearn.cli import main
    from anatlearn.evaluate import Results, make_feature_table, write_features

    truth = truth_targets(tiny_cohort)
    ids = truth["GMV"].index
    rng = np.random.default_rng(0)
    # features: the true log GMV of 5 regions plus 5 noise columns (48 subjects: few columns); and pure noise
    write_features(make_feature_table(np.c_[truth["GMV"].to_numpy()[:, :5], rng.normal(size=(len(ids), 5))], ids),
                   tmp_path / "good.parquet")
    write_features(make_feature_table(rng.normal(size=(len(ids), 20)), ids), tmp_path / "noise.parquet")
    truth["GMV"].iloc[:, :5].rename_axis("participant_id").reset_index().to_csv(tmp_path / "fs.tsv", sep="\t", index=False)
    code = main(["evaluate", "anatomy", "--features", str(tmp_path / "good.parquet"), "--features",
                 str(tmp_path / "noise.parquet"), "--truth", str(tiny_cohort), "--targets", f"fs={tmp_path / 'fs.tsv'}",
                 "--folds", "4", "--out", str(tmp_path / "res")])
    assert code == 0
    res = Results.read(tmp_path / "res")
    mean = res.table.set_index(["method", "metric"])["mean"]
    assert res.kind == "anatomy"
    assert mean["good", "r2_fs"] > 0.95 and mean["noise", "r2_fs"] < 0.1
    assert mean["good", "r2_GMV"] > mean["noise", "r2_GMV"] + 0.2
    assert {"r2_CT", "r2_SA", "r2_latents", "rankme", "rankme_centred"} <= set(res.table["metric"])
    assert len(res.extra["per_target"]["good"]["GMV"]) == truth["GMV"].shape[1]
    capsys.readouterr()
    assert main(["evaluate", "anatomy", "--features", str(tmp_path / "good.parquet")]) == 2
    assert "--truth" in capsys.readouterr().err
    assert main(["evaluate", "anatomy", "--features", str(tmp_path / "good.parquet"), "--truth", str(tmp_path)]) == 2
    assert "has no ground truth" in capsys.readouterr().err
