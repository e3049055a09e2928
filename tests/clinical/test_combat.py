"""ComBat: agreement with neuroCombat (Fortin's reference implementation), removal of a known site shift
with the covariate effect kept, application to new subjects, refusal of unseen sites, no-pickle round trip."""

import contextlib
import json
import io

import numpy as np
import pandas as pd
import pytest

from anatlearn.clinical.combat import ComBatHarmonizer
from anatlearn.errors import DataError

SITES = ["A", "B", "C"]


def cohort(n, seed, n_features=30):
    """Clean features with an age effect, and the same plus site-specific additive and multiplicative shifts
    (the shifts depend only on the site, fixed across calls)."""
    rng = np.random.default_rng(seed)
    cov = pd.DataFrame({"site": rng.choice(SITES, n), "age": rng.uniform(20, 80, n), "sex": rng.choice(["F", "M"], n)},
                       index=[f"{seed}-{i}" for i in range(n)])
    age_slope = np.linspace(-0.05, 0.05, n_features)
    clean = rng.normal(0, 1, (n, n_features)) + np.outer(cov["age"] - 50, age_slope) + 0.5 * (cov["sex"] == "M").to_numpy()[:, None]
    site_rng = np.random.default_rng(99)
    shift = {s: site_rng.normal(0, 1.5, n_features) for s in SITES}
    scale = {s: site_rng.uniform(0.6, 1.6, n_features) for s in SITES}
    noise_part = clean - np.outer(cov["age"] - 50, age_slope)
    shifted = np.stack([shift[s] + scale[s] * noise_part[i] for i, s in enumerate(cov["site"])]) \
        + np.outer(cov["age"] - 50, age_slope)
    cols = [f"f{i:04d}" for i in range(n_features)]
    return pd.DataFrame(clean, index=cov.index, columns=cols), pd.DataFrame(shifted, index=cov.index, columns=cols), cov, age_slope


def site_mean_spread(X, sites):
    means = np.stack([X[sites == s].mean(axis=0) for s in SITES])
    return float(means.std(axis=0).mean())


def test_matches_neurocombat():
    neurocombat = pytest.importorskip("neuroCombat")
    _, X, cov, _ = cohort(150, seed=0)
    with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints progress
        ref = neurocombat.neuroCombat(X.to_numpy().T.copy(), cov.reset_index(drop=True), "site",
                                      categorical_cols=["sex"], continuous_cols=["age"])
    ours = ComBatHarmonizer(["age", "sex"]).fit(X, cov)
    np.testing.assert_allclose(ours.transform(X, cov).to_numpy(), ref["data"].T, atol=2e-5)
    np.testing.assert_allclose(ours.gamma_, ref["estimates"]["gamma.star"], atol=2e-5)
    np.testing.assert_allclose(ours.delta_, ref["estimates"]["delta.star"], rtol=2e-4)


def test_known_site_shift_removed_and_covariates_kept():
    clean, X, cov, age_slope = cohort(300, seed=1)
    sites = cov["site"].to_numpy()
    h = ComBatHarmonizer(["age", "sex"]).fit(X, cov)
    H = h.transform(X, cov).to_numpy()
    assert site_mean_spread(X.to_numpy(), sites) > 0.8
    assert site_mean_spread(H, sites) < 0.1 * site_mean_spread(X.to_numpy(), sites)
    # per-site variance ratios pulled to 1
    ratio = lambda M: np.stack([M[sites == s].std(axis=0) for s in SITES]).std(axis=0).mean()  # noqa: E731
    assert ratio(H) < 0.4 * ratio(X.to_numpy())
    # the age and sex effects survive
    design = np.column_stack([np.ones(len(cov)), cov["age"] - 50, (cov["sex"] == "M").astype(float)])
    coef = np.linalg.lstsq(design, H, rcond=None)[0]
    np.testing.assert_allclose(coef[1], age_slope, atol=0.01)
    assert np.all(np.abs(coef[2]) > 0.2)
    # new subjects of the same sites, harmonised with the reference's estimates: shift removed there too
    clean_new, X_new, cov_new, _ = cohort(150, seed=2)
    H_new = h.transform(X_new, cov_new)
    assert list(H_new.index) == list(X_new.index)
    assert site_mean_spread(H_new.to_numpy(), cov_new["site"].to_numpy()) < 0.25


def test_unseen_site_and_level_refused(tmp_path):
    _, X, cov, _ = cohort(90, seed=3)
    h = ComBatHarmonizer(["age", "sex"]).fit(X, cov)
    new = cov.copy()
    new.iloc[:5, new.columns.get_loc("site")] = "Z"
    with pytest.raises(DataError, match=r"site\(s\) Z \(5 subjects\) were not in the reference"):
        h.transform(X, new, source="new.parquet")
    new = cov.copy()
    new.iloc[0, new.columns.get_loc("sex")] = "other"
    with pytest.raises(DataError, match="covariate 'sex' has value"):
        h.transform(X, new)
    with pytest.raises(DataError, match="column\\(s\\) age not found"):
        h.transform(X, cov.drop(columns="age"))


def test_round_trip_without_pickle(tmp_path):
    _, X, cov, _ = cohort(90, seed=4)
    h = ComBatHarmonizer(["age", "sex"], eb=True).fit(X, cov)
    path = h.save(tmp_path / "combat.npz")
    with np.load(path, allow_pickle=False) as f:
        assert {"gamma", "delta", "sites"} <= set(f.files)
    loaded = ComBatHarmonizer.load(path)
    pd.testing.assert_frame_equal(loaded.transform(X, cov), h.transform(X, cov))
    from anatlearn.clinical.brain_age import BrainAgeModel

    with pytest.raises(DataError, match="holds a 'combat' model"):
        BrainAgeModel.load(path)


def test_features_constant_within_a_site_are_left_alone():
    """A dead unit (constant everywhere) or one constant within one site must not gain a per-site offset from
    the empirical-Bayes shrinkage (which would make it a perfect site indicator)."""
    _, X, cov, _ = cohort(120, seed=5, n_features=10)
    X = X.copy()
    X["f0000"] = 0.0
    X.loc[cov["site"] == "B", "f0001"] = 0.25
    h = ComBatHarmonizer(["age", "sex"]).fit(X, cov)
    H = h.transform(X, cov)
    np.testing.assert_allclose(H["f0000"], 0.0, atol=1e-12)
    np.testing.assert_allclose(H["f0001"], X["f0001"], atol=1e-9)
    assert h.describe()["features_left_unadjusted"] == 2
    assert site_mean_spread(H.to_numpy()[:, 2:], cov["site"].to_numpy()) < 0.1


def test_reference_check_warns_when_eb_shrinkage_leaves_the_site(tmp_path):
    """Learned embeddings: nearly collinear features (one shared factor) with small, feature-specific site
    shifts (sd 0.05 against unit variance). A linear probe finds the site from the features' differences,
    but each feature's shift is so small next to its variance that ComBat's empirical-Bayes prior shrinks
    it to the mean over features: with --eb the reference keeps its site information and a warning says
    so; without, the probe falls to chance or below (the demo's anatcl-global features did the same: 0.39 ->
    0.40 with EB, 0.12 without, on the healthy cohort ComBat was fitted on)."""
    from anatlearn.clinical.run import run_harmonize

    rng = np.random.default_rng(0)
    n, p = 300, 60
    cov = pd.DataFrame({"site": np.repeat(SITES, n // 3), "age": rng.uniform(20, 80, n)},
                       index=[f"s{i}" for i in range(n)])
    shift = {s: rng.normal(0, 0.05, p) for s in SITES}
    X = rng.normal(0, 1, (n, 1)) + 0.05 * rng.normal(0, 1, (n, p)) + np.stack([shift[s] for s in cov["site"]])
    X = pd.DataFrame(X, index=cov.index, columns=[f"f{i:04d}" for i in range(p)])
    eb = run_harmonize(tmp_path / "eb", X, cov, reference=X, reference_participants=cov, covariates=["age"])
    no_eb = run_harmonize(tmp_path / "no-eb", X, cov, reference=X, reference_participants=cov, covariates=["age"],
                          eb=False)
    before = eb["reference_site_check"]["before"]
    assert before > 0.8  # the site is plainly in the features (chance 1/3)
    assert eb["reference_site_check"]["after"] > 0.7 and "--no-eb" in eb["warning"]
    # without EB, ComBat centres each site on these very subjects: a held-out subject's own site mean sits on
    # the far side of it, so the CV probe anticorrelates (0.06 at chance 0.33): a note, not a warning about EB
    assert no_eb["reference_site_check"]["after"] < 0.45 and not any("--no-eb" in w for w in no_eb["warnings"])
    assert no_eb["warnings"] == [no_eb["site_check"]["note"], no_eb["reference_site_check"]["note"]]
    assert no_eb["reference_site_check"]["note"].startswith(
        "site probe on the reference itself after ComBat (0.060) is below chance 0.333 by more than 0.054 (2 SD of "
        "random guessing over 300 subjects in 3 sites, 100 per site): the probe anticorrelates with site")
    assert json.loads((tmp_path / "eb" / "harmonize.json").read_text())["warning"] == eb["warning"]
