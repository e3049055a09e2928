import json

import numpy as np
import pandas as pd
import pytest

from anatlearn.data import open_dataset
from anatlearn.synthetic import generate_cohort
from anatlearn.errors import ConfigError


def test_layout_and_splits(tiny_cohort):
    df = pd.read_csv(tiny_cohort / "participants.tsv", sep="\t", dtype={"participant_id": str})
    assert len(df) == 48 and set(df["split"]) == {"train", "internal_test", "external_test"}
    # external_test = the held-out site only
    assert set(df.loc[df["split"] == "external_test", "site"]) == {"site03"}
    assert "site03" not in set(df.loc[df["split"] != "external_test", "site"])
    assert df["age"].between(6, 88).all()
    res = json.loads((tiny_cohort / "resource" / "resources.json").read_text())
    assert len(res["desikan_roi"]["regions"]) == 68 and len(res["desikan_roi"]["channels"]) == 7
    roi = pd.read_csv(tiny_cohort / "freesurfer_roi" / "desikan_roi_features.csv")
    assert roi.shape == (48, 2 + 7 * 68)


def test_deterministic_for_a_seed(tmp_path):
    a = generate_cohort(tmp_path / "a", 6, (32, 36, 32), seed=5)
    b = generate_cohort(tmp_path / "b", 6, (32, 36, 32), seed=5)
    c = generate_cohort(tmp_path / "c", 6, (32, 36, 32), seed=6)
    fa = sorted((a / "images").iterdir())
    assert all(np.array_equal(np.load(x), np.load(b / "images" / x.name)) for x in fa)
    assert (a / "freesurfer_roi" / "desikan_roi_features.csv").read_text() == \
        (b / "freesurfer_roi" / "desikan_roi_features.csv").read_text()
    assert not np.array_equal(np.load(fa[0]), np.load(c / "images" / fa[0].name))


def test_retest_keeps_anatomy_and_redraws_noise(tmp_path):
    a = generate_cohort(tmp_path / "a", 6, (32, 36, 32), seed=5)
    r = generate_cohort(tmp_path / "r", 6, (32, 36, 32), seed=5, noise_seed=1)
    assert np.array_equal(np.load(a / "truth" / "anatomy.npy"), np.load(r / "truth" / "anatomy.npy"))
    img_a = np.load(sorted((a / "images").iterdir())[0])
    img_r = np.load(sorted((r / "images").iterdir())[0])
    assert not np.array_equal(img_a, img_r)
    assert np.corrcoef(img_a.ravel(), img_r.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("world", ["v1", "v2"])
def test_descriptors_follow_the_designed_model(tmp_path, world):
    """Measured CT correlates with age (thinning) and with the latent factors through their loadings."""
    from anatlearn.synthetic import make_world

    root = generate_cohort(tmp_path / "s", 300, (32, 36, 32), seed=2, world=world)
    ds = open_dataset(root)
    x = ds.descriptors(("CT", "GMV", "SA"))
    lat = pd.read_csv(root / "truth" / "latents.tsv", sep="\t", dtype={"participant_id": str})
    age = ds.participants["age"].to_numpy()
    mean_ct = x[:, :, 0].mean(1)
    older = age > 40
    assert np.corrcoef(age[older], mean_ct[older])[0, 1] < -0.5  # cortical thinning with age
    w = make_world((32, 36, 32), 2, 4, world)
    # with age regressed out, each region's CT follows its loading on each latent factor
    ct = np.log(x[:, :, 0])
    u_cols = [c for c in lat if c[0] == "u" and c[1:].isdigit()]
    assert len(u_cols) == w.load_ct.shape[1] == (4 if world == "v1" else 7)
    z = (age - age.mean()) / age.std()
    design = np.column_stack([np.ones_like(z), z, z**2, z**3, z**4, lat[u_cols].to_numpy()])
    coef, *_ = np.linalg.lstsq(design, ct, rcond=None)
    if world == "v1":  # loadings in units of 0.05 log CT
        for j in range(4):
            r = np.corrcoef(coef[5 + j], w.load_ct[:, j])[0, 1]
            assert r > 0.9, (j, r)
    else:  # v2 loadings are in log units: the regression recovers them (slope 1) through the noise
        est, true = coef[5:].T.ravel(), w.load_ct.ravel()
        assert np.corrcoef(est, true)[0, 1] > 0.9
        assert np.polyfit(true, est, 1)[0] == pytest.approx(1.0, abs=0.1)
    # GMV = CT x SA (up to noise)
    assert np.corrcoef(np.log(x[:, :, 1]).ravel(), np.log(x[:, :, 0] * x[:, :, 2]).ravel())[0, 1] > 0.99


def test_downstream_cohort_labels(tiny_downstream):
    df = pd.read_csv(tiny_downstream / "participants.tsv", sep="\t")
    assert set(df["diagnosis"]) == {"CN", "AD-like", "SCZ-like"}
    ad = df[df["cohort"] == "AD-like"]
    assert ad["MMSE_like"].notna().all() and df.loc[df["cohort"] == "SCZ-like", "MMSE_like"].isna().all()
    pat = ad[ad["diagnosis"] == "AD-like"]
    assert (pat["severity"] > 0).all() and (ad.loc[ad["diagnosis"] == "CN", "severity"] == 0).all()
    assert np.corrcoef(pat["severity"], pat["MMSE_like"])[0, 1] < -0.7
    info = json.loads((tiny_downstream / "truth" / "world.json").read_text())
    for d in ("AD-like", "SCZ-like"):
        assert 0.05 < info["diseases"][d]["fraction_in_healthy_span"] < 0.95


def test_generator_errors(tmp_path):
    with pytest.raises(ConfigError, match="shape"):
        generate_cohort(tmp_path / "x", 4, (16, 16, 16))
    with pytest.raises(ConfigError, match="unknown disease 'flu'"):
        generate_cohort(tmp_path / "x", 4, (32, 32, 32), diseases=("flu",))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        generate_cohort(tmp_path / "full", 4, (32, 32, 32))
    assert (tmp_path / "full" / "keep.txt").exists()


def test_synth_cli(tmp_path, capsys):
    from anatlearn.cli import main

    assert main(["synth", "--out", str(tmp_path / "c"), "--subjects", "5", "--shape", "32", "32", "32", "--seed", "3"]) == 0
    assert len(list((tmp_path / "c" / "images").iterdir())) == 5
    assert main(["synth", str(tmp_path / "c"), "--subjects", "5", "--shape", "32", "32", "32"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_imports_run_one_way():
    """data (readers) never loads the generator; world.py loads no version; v1 does not load v2."""
    import subprocess
    import sys

    probe = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('anatlearn.synthetic'))))")

    def loaded(module):
        done = subprocess.run([sys.executable, "-c", probe, module], capture_output=True, text=True, check=True)
        return set(done.stdout.split())

    assert loaded("anatlearn.data") == set()
    # importing a submodule runs the package's __init__ (which loads cohort): check the modules' own imports
    import ast
    from pathlib import Path

    import anatlearn.synthetic as pkg

    def imports(name):
        tree = ast.parse((Path(pkg.__file__).parent / f"{name}.py").read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
            {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
             for a in n.names}

    assert not any("world_v" in m or "cohort" in m for m in imports("world"))
    assert not any("world_v2" in m or "cohort" in m for m in imports("world_v1"))
    assert not any("cohort" in m for m in imports("world_v2"))
