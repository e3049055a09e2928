"""CAT12 output trees read as they are: BIDS entities from the file names, the participants table when
present, mwp1 preferred (s6mwp1 / wp1 with a warning), the model's grid checked with an error naming the file,
and `anatlearn embed --data CAT12_ROOT` giving one row per subject."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from anatlearn.cli import main
from anatlearn.data import open_dataset
from anatlearn.data.cat12 import Cat12Dataset, bids_entities, is_cat12_tree
from anatlearn.errors import DataError
from anatlearn.features import read_features
from anatlearn.prep.templates import TARGETS, Grid

SMALL = Grid.covering_box(3.0)  # 61 x 73 x 61, the same MNI box as the model's grid at twice the voxel size


def _write_map(root, sub, ses=None, prefix="mwp1", grid=SMALL, seed=0, gz=False):
    anat = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat" / "mri"
    anat.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}sub-{sub}" + (f"_ses-{ses}" if ses else "") + "_run-1_T1w.nii" + (".gz" if gz else "")
    data = np.random.default_rng(seed).random(grid.shape, dtype=np.float32)
    nib.save(nib.Nifti1Image(data, grid.matrix), anat / name)
    return anat / name, data


def _participants(root, ids, ages):
    pd.DataFrame({"participant_id": [f"sub-{i}" for i in ids], "age": ages, "sex": "F", "site": "s1"}).to_csv(
        root / "participants.tsv", sep="\t", index=False)


def test_entities_subjects_sessions_and_participants(tmp_path):
    p1, d1 = _write_map(tmp_path, "01", seed=1)
    p2, d2 = _write_map(tmp_path, "02", ses="bl", seed=2, gz=True)
    _write_map(tmp_path, "02", prefix="wp1", ses="bl", seed=9)  # unmodulated map beside it: not read
    _participants(tmp_path, ["01", "02"], [30.5, 71.0])
    assert is_cat12_tree(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mwp1 present: no warning
        ds = open_dataset(tmp_path, grid=SMALL)
    assert isinstance(ds, Cat12Dataset) and ds.prefix == "mwp1"
    assert list(ds.participants["participant_id"]) == ["01", "02"]
    assert list(ds.participants["session"]) == ["", "bl"] and list(ds.participants["age"]) == [30.5, 71.0]
    assert "image" not in ds.participants.columns
    np.testing.assert_array_equal(ds.volume(1), d2)
    np.testing.assert_array_equal(ds.subset([1]).volume(0), d2)
    assert bids_entities("s6mwp1sub-07_ses-3_acq-mp2rage_T1w.nii.gz", "s6mwp1") == {"sub": "07", "ses": "3", "acq": "mp2rage"}


def test_sessions_of_one_subject_are_rows_and_duplicates_an_error(tmp_path):
    _write_map(tmp_path, "01", ses="1")
    _write_map(tmp_path, "01", ses="2", seed=3)
    _write_map(tmp_path, "02", ses="1", seed=4)
    ds = Cat12Dataset(tmp_path, require_age=False, grid=SMALL)  # no participants.tsv: enough to embed
    assert list(ds.participants["participant_id"]) == ["01_ses-1", "01_ses-2", "02"]
    assert list(ds.participants["subject"]) == ["01", "01", "02"]
    with pytest.raises(DataError, match="has no participants.tsv: ages are needed"):
        Cat12Dataset(tmp_path, grid=SMALL)
    anat = tmp_path / "sub-02" / "ses-1" / "anat" / "mri"
    nib.save(nib.load(anat / "mwp1sub-02_ses-1_run-1_T1w.nii"), anat / "mwp1sub-02_ses-1_run-2_T1w.nii")
    with pytest.raises(DataError, match=r"two mwp1 images for subject 02 session 1: .*run-1.*run-2"):
        Cat12Dataset(tmp_path, require_age=False, grid=SMALL)


def test_smoothed_or_unmodulated_maps_are_read_with_a_warning(tmp_path):
    _write_map(tmp_path, "01", prefix="s6mwp1")
    _write_map(tmp_path, "01", prefix="wp1", seed=5)
    with pytest.warns(UserWarning, match="reading CAT12 s6mwp1 maps"):
        ds = Cat12Dataset(tmp_path, require_age=False, grid=SMALL)
    assert ds._paths[0].name.startswith("s6mwp1sub-01")
    with pytest.warns(UserWarning, match="wp1"):
        assert Cat12Dataset(tmp_path, require_age=False, grid=SMALL, prefix="wp1")._paths[0].name.startswith("wp1sub")


def test_table_and_tree_must_match(tmp_path):
    _write_map(tmp_path, "01")
    _write_map(tmp_path, "02")
    _participants(tmp_path, ["01"], [40])
    with pytest.raises(DataError, match=r"1 CAT12 map\(s\) have no row in .*participants.tsv: .*mwp1sub-02"):
        Cat12Dataset(tmp_path, grid=SMALL)
    _participants(tmp_path, ["01", "02", "03"], [40, 41, 42])
    with pytest.raises(DataError, match=r"1 subject\(s\) of .*participants.tsv have no CAT12 mwp1 map.*03"):
        Cat12Dataset(tmp_path, grid=SMALL)


def test_a_map_off_the_model_grid_is_an_error_naming_the_file(tmp_path):
    path, _ = _write_map(tmp_path, "01")  # 3 mm: not the model's 1.5 mm grid
    with pytest.raises(DataError, match=r"CAT12 map .*mwp1sub-01_run-1_T1w.nii \(subject 01\) is 61x73x61 voxels "
                                        r"of 3, 3, 3 mm .*the model expects 121x145x121 voxels of 1.5, 1.5, 1.5 mm"):
        open_dataset(tmp_path, require_age=False)
    shifted = TARGETS["vbm"].matrix.copy()
    shifted[:3, 3] += 6.0  # right shape and voxel size, wrong position
    nib.save(nib.Nifti1Image(np.zeros((121, 145, 121), np.float32), shifted), path)
    with pytest.raises(DataError, match=r"with origin \[96.0, -120.0, -66.0\].*origin \[90.0, -126.0, -72.0\]"):
        open_dataset(tmp_path, require_age=False)


def test_embed_reads_a_cat12_tree_one_row_per_subject(tmp_path):
    """Done-when of issue 27: a CAT12 tree of generated VBM maps on the model's grid embeds to one row per
    subject, without an image column, through an exported model folder."""
    from anatlearn.models import build_model, default_model_config
    from anatlearn.models.card import export_folder

    root = tmp_path / "cat12"
    maps = {sub: _write_map(root, sub, ses=ses, grid=TARGETS["vbm"], seed=i)[1]
            for i, (sub, ses) in enumerate([("01", None), ("02", "1"), ("03", None)])}
    _participants(root, ["01", "02", "03"], [20, 50, 80])
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    weights = export_folder(model, tmp_path / "weights")
    out = tmp_path / "f.csv"
    assert main(["embed", "--weights", str(weights), "--data", str(root), "--out", str(out), "--no-jit"]) == 0
    table = read_features(out)
    assert list(table.index) == ["01", "02", "03"] and table.shape == (3, 64)
    with torch.no_grad():
        ref = model.encode(torch.from_numpy(np.stack(list(maps.values())))[:, None]).numpy()
    np.testing.assert_allclose(table.to_numpy(), ref, rtol=0, atol=1e-5)
