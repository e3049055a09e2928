"""``python -m anatlearn.prep.compare``: prep's GM maps against CAT12-like maps, with known answers."""

import nibabel as nib
import numpy as np
import pytest


def test_compare_known_maps(tmp_path, capsys):
    from anatlearn.prep.compare import main
    from anatlearn.prep.pipeline import masked_correlation
    from anatlearn.prep.templates import TARGETS, template_on_grid

    grid = TARGETS["vbm"]
    gm = template_on_grid(grid)["gm"]
    mask = template_on_grid(grid)["mask"]
    out = tmp_path / "prep"
    (out / "sub-a").mkdir(parents=True)
    (out / "participants.tsv").write_text("participant_id\tage\nsub-a\t40\n")
    ours = (1.1 * gm).astype(np.float32)  # 10 % more GM than "CAT12"
    np.save(out / "sub-a" / "sub-a_preproc-cat12vbm_desc-gm_T1w.npy", ours[None])
    noise = np.random.default_rng(0).normal(0, 0.05, gm.shape).astype(np.float32)
    cat = np.clip(gm + noise, 0, None).astype(np.float32)
    (tmp_path / "cat").mkdir()
    nib.save(nib.Nifti1Image(cat, grid.matrix), tmp_path / "cat" / "mwp1sub-a_T1w.nii")
    code = main([str(out), str(tmp_path / "cat" / "mwp1sub-{id}_T1w.nii"), "--out", str(tmp_path / "p.tsv")])
    assert code == 0
    printed = capsys.readouterr().out
    import pandas as pd

    row = pd.read_csv(tmp_path / "p.tsv", sep="\t").iloc[0]
    assert row["r"] == pytest.approx(masked_correlation(ours, cat, mask), abs=1e-4)
    assert row["volume_ratio"] == pytest.approx(ours.sum() / cat.sum(), rel=1e-4)
    assert 0.9 < row["r"] < 1.0 and "median: r" in printed
    # a missing CAT12 map is one clear error naming the file
    code = main([str(out), str(tmp_path / "nope" / "{id}.nii")])
    assert code == 2 and "subject a" in capsys.readouterr().err
