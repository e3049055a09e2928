"""World v2 of the synthetic cohort: full-rank healthy structure, disease sizes as configured Cohen's d, analytic
world statistics against brute force, and world v1 reproduced bit-for-bit."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anatlearn.synthetic import generate_cohort, make_world, sample_subjects, true_anatomy
from anatlearn.synthetic import world_v2 as v2
from anatlearn.synthetic.stats import residual_structure

SHAPE = (32, 36, 32)


def _healthy(version: str, n: int, seed: int = 3):
    world = make_world(SHAPE, seed, 4, version)
    subjects = sample_subjects(world, n, seed)
    return world, subjects, true_anatomy(world, subjects)


def _covariates(subjects):
    return subjects["age"].to_numpy(float), (subjects["sex"] == "M").to_numpy(float)


def _latents(subjects, prefix):
    return subjects[[c for c in subjects if c[0] == prefix and c[1:].isdigit()]].to_numpy()


def test_residual_structure_on_a_known_equicorrelated_matrix():
    """K = 10 regions with correlation 0.4: top PC holds (1 + 9 * 0.4) / 10 = 46 %, median correlation 0.4."""
    rng = np.random.default_rng(0)
    n, k, rho = 20000, 10, 0.4
    x = np.sqrt(rho) * rng.normal(size=(n, 1)) + np.sqrt(1 - rho) * rng.normal(size=(n, k))
    age, male = rng.uniform(6, 88, n), rng.integers(0, 2, n).astype(float)
    s = residual_structure(x + 0.01 * age[:, None], age, male, latents=None)
    assert s["top1_pc_share"] == pytest.approx(0.46, abs=0.01)
    assert s["top3_pc_share"] == pytest.approx(0.46 + 2 * 0.06, abs=0.01)
    assert s["corr_median"] == pytest.approx(rho, abs=0.02)


def test_v2_healthy_variation_is_full_rank_and_v1_is_not():
    world, subjects, anatomy = _healthy("v2", 1500)
    age, male = _covariates(subjects)
    ct = residual_structure(np.log(anatomy[..., 0]), age, male, _latents(subjects, "u"))
    sa = residual_structure(np.log(anatomy[..., 2]), age, male, _latents(subjects, "v"))
    assert ct["top3_pc_share"] < 0.6 and sa["top3_pc_share"] < 0.75
    assert ct["pcs_for_90pct"] > 25 and sa["pcs_for_90pct"] > 20
    assert 0.2 < ct["corr_median"] < 0.45 and 0.3 < sa["corr_median"] < 0.6
    assert 0.1 < ct["corr_q25"] and ct["corr_q75"] < 0.6
    # region-specific share (not explained by the latents): psi ~ U(0.35, 0.60) for CT, U(0.25, 0.45) for SA
    assert 0.40 < ct["specific_share_median"] < 0.55 and 0.28 < sa["specific_share_median"] < 0.42
    # the same statistics in v1: almost rank 6 (so these assertions discriminate)
    _, s1, a1 = _healthy("v1", 1500)
    age1, male1 = _covariates(s1)
    assert residual_structure(np.log(a1[..., 0]), age1, male1)["top3_pc_share"] > 0.9


def test_v2_empirical_covariance_matches_the_analytic_one():
    world, subjects, anatomy = _healthy("v2", 4000)
    age, male = _covariates(subjects)
    z = (age - age.mean()) / age.std()
    design = np.column_stack([np.ones_like(z), z, z**2, z**3, z**4, z**5, male])
    x = np.log(anatomy[..., 0])
    res = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    emp, ana = np.cov(res, rowvar=False), v2.residual_cov(world, "ct")
    sd = np.sqrt(np.diag(ana))
    np.testing.assert_allclose(np.sqrt(np.diag(emp)), sd, rtol=0.08)
    corr_emp, corr_ana = emp / np.outer(np.sqrt(np.diag(emp)), np.sqrt(np.diag(emp))), ana / np.outer(sd, sd)
    assert np.abs(corr_emp - corr_ana).max() < 0.1
    # healthy (age + residual) covariance: the analytic span fraction matches an empirical PCA of the cohort
    cov_h = np.cov(x, rowvar=False)
    val, vec = np.linalg.eigh(cov_h)
    val, vec = val[::-1], vec[:, ::-1]
    m = int(np.searchsorted(np.cumsum(val) / val.sum(), v2.HEALTHY_SPAN_VARIANCE) + 1)
    report = v2.disease_report(world)
    for name in world.diseases:
        delta = v2.disease_shift(world, name)
        proj = vec[:, :m].T @ (delta / np.linalg.norm(delta))
        assert report[name]["healthy_span_pcs"] == pytest.approx(m, abs=3)
        assert report[name]["fraction_in_healthy_span"] == pytest.approx(proj @ proj, abs=0.06)


@pytest.mark.parametrize("disease", ["AD-like", "SCZ-like"])
def test_realised_effect_size_matches_the_configured_d(disease):
    """Patients vs matched controls, age and sex regressed: Cohen's d (controls' SD) of log CT per pattern region
    and along the pattern equal the configured values."""
    world = make_world(SHAPE, 3, 4, "v2")
    subjects = sample_subjects(world, 4000, 3, (disease,), cohort_code=1)
    x = np.log(true_anatomy(world, subjects)[..., 0])
    age, male = _covariates(subjects)
    patient = (subjects["diagnosis"] == disease).to_numpy(float)
    z = (age - age.mean()) / age.std()
    design = np.column_stack([np.ones_like(z), z, z**2, z**3, z**4, male, patient])
    coef = np.linalg.lstsq(design, x, rcond=None)[0]
    res = x - design @ coef
    sd_ctrl = res[patient == 0].std(0, ddof=1)
    pattern = world.diseases[disease]
    d_real = (-coef[-1] / sd_ctrl)[pattern > 0]
    report = v2.disease_report(world)[disease]
    np.testing.assert_allclose(d_real, report["d_regional"], atol=0.12)
    assert d_real.max() == pytest.approx(v2.DISEASE_D[disease], abs=0.12)
    unit = v2.disease_shift(world, disease) / np.linalg.norm(v2.disease_shift(world, disease))
    d_along = float(coef[-1] @ unit) / (res[patient == 0] @ unit).std(ddof=1)
    assert d_along == pytest.approx(report["d_along_pattern"], abs=0.12)
    # outside the pattern, nothing changes
    assert np.abs((coef[-1] / sd_ctrl)[pattern == 0]).max() < 0.2


def test_v2_truth_files(tiny_cohort, tiny_downstream):
    info = json.loads((tiny_downstream / "truth" / "world.json").read_text())
    assert info["world"] == "v2" and info["params"]["world"] == "v2"
    assert info["model"]["disease_d_peak"] == v2.DISEASE_D
    for d in ("AD-like", "SCZ-like"):
        rep = info["diseases"][d]
        assert 0.0 < rep["fraction_in_factor_span"] < rep["fraction_in_healthy_span"] < 1.0
        assert rep["d_regional"][int(np.argmax(rep["weights"]))] == pytest.approx(v2.DISEASE_D[d], abs=1e-3)
        assert rep["d_mahalanobis"] >= rep["d_along_pattern"] > 0
    lat = pd.read_csv(tiny_cohort / "truth" / "latents.tsv", sep="\t", dtype={"participant_id": str})
    assert list(lat.columns) == ["participant_id"] + [f"u{j}" for j in range(7)] + [f"v{j}" for j in range(5)] + ["severity"]
    anatomy = np.load(tiny_cohort / "truth" / "anatomy.npy")
    assert anatomy.shape == (48, 68, 3) and anatomy.dtype == np.float32
    assert np.allclose(anatomy[..., 1] / (anatomy[..., 0] * anatomy[..., 2]), 1, atol=0.1)  # GMV ~ CT x SA


# Fingerprints of every file of two small v1 cohorts (world.json excluded: it holds provenance), computed with
# the generator at commit be2825b, before world v2 existed. Numbers are compared to 1e-6 relative, not bit for
# bit: numpy's SIMD exp/log and BLAS kernels differ by an ulp between CPUs, which a byte hash would call a change.
V1_FINGERPRINT = Path(__file__).with_name("world_v1_fingerprint.json")


def _fingerprint(root: Path) -> dict:
    """Per file: shape, sum, sum of |x| and sum of x^2 of its numbers; a hash of its text columns."""
    import nibabel as nib

    out = {}
    for p in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "world.json"):
        rel = str(p.relative_to(root))
        if p.suffix == ".npy":
            a = np.load(p).astype(np.float64)
        elif p.name.endswith(".nii.gz"):
            a = np.asarray(nib.load(p).dataobj, dtype=np.float64)
        elif p.suffix == ".stats":
            rows = [line.split() for line in p.read_text().splitlines() if line and not line.startswith("#")]
            a = np.array([[float(x) for x in r[1:]] for r in rows])
            out[rel + ":text"] = hashlib.sha256(" ".join(r[0] for r in rows).encode()).hexdigest()[:16]
        elif p.suffix in (".tsv", ".csv"):
            df = pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",", dtype=str)
            num = df.apply(pd.to_numeric, errors="coerce")
            out[rel + ":text"] = hashlib.sha256(df.loc[:, num.isna().any()].to_csv(index=False).encode()).hexdigest()[:16]
            a = num.loc[:, ~num.isna().any()].to_numpy(np.float64)
        else:
            out[rel + ":bytes"] = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            continue
        out[rel] = [list(a.shape), float(a.sum()), float(np.abs(a).sum()), float((a * a).sum())]
    return out


def _assert_same(got: dict, want: dict, what: str) -> None:
    assert sorted(got) == sorted(want), f"{what}: the files of a v1 cohort changed"
    for key, ref in want.items():
        if isinstance(ref, str):
            assert got[key] == ref, f"{what}: {key} changed"
        else:
            assert got[key][0] == ref[0], f"{what}: shape of {key} changed"
            np.testing.assert_allclose(got[key][1:], ref[1:], rtol=1e-6, atol=1e-9, err_msg=f"{what}: {key}")


def test_world_v1_is_reproduced(tmp_path):
    want = json.loads(V1_FINGERPRINT.read_text())
    a = generate_cohort(tmp_path / "h", 6, SHAPE, seed=5, world="v1")
    b = generate_cohort(tmp_path / "d", 6, SHAPE, seed=5, diseases=("AD-like", "SCZ-like"), nifti=True, world="v1")
    _assert_same(_fingerprint(a), want["healthy"], "healthy v1 cohort")
    _assert_same(_fingerprint(b), want["downstream_nifti"], "downstream v1 cohort with NIfTI")
    assert json.loads((a / "truth" / "world.json").read_text())["world"] == "v1"
    v2_root = generate_cohort(tmp_path / "v2", 6, SHAPE, seed=5)
    assert not np.array_equal(np.load(a / "truth" / "anatomy.npy"), np.load(v2_root / "truth" / "anatomy.npy"))


def test_synth_cli_world_option(tmp_path, capsys):
    from anatlearn.cli import main

    assert main(["synth", "--out", str(tmp_path / "c1"), "-n", "3", "--shape", *map(str, SHAPE), "--seed", "5",
                 "--world", "v1"]) == 0
    ref = generate_cohort(tmp_path / "ref", 3, SHAPE, seed=5, world="v1")
    assert np.array_equal(np.load(tmp_path / "c1" / "truth" / "anatomy.npy"), np.load(ref / "truth" / "anatomy.npy"))
    assert main(["synth", "--out", str(tmp_path / "c2"), "-n", "3", "--shape", *map(str, SHAPE), "--seed", "5"]) == 0
    assert json.loads((tmp_path / "c2" / "truth" / "world.json").read_text())["world"] == "v2"
    capsys.readouterr()
    assert main(["synth", "--out", str(tmp_path / "bad"), "-n", "3", "--shape", *map(str, SHAPE), "--world", "v3"]) == 2
    err = capsys.readouterr().err
    assert "unknown --world 'v3'; choose from v1, v2" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
