import json
import shutil

import numpy as np
import pandas as pd
import pytest

from anatlearn.data import DescriptorNormaliser, OpenBHB, ViewsDataset, make_loader, open_dataset
from anatlearn.data.regions import ROI_CHANNELS
from anatlearn.errors import DataError


@pytest.fixture()
def cohort(tiny_cohort, tmp_path):
    dst = tmp_path / "c"
    shutil.copytree(tiny_cohort, dst)
    return dst


def test_reader_splits_volumes_and_descriptors(tiny_cohort):
    ds = OpenBHB(tiny_cohort, split="train")
    df = pd.read_csv(tiny_cohort / "participants.tsv", sep="\t", dtype={"participant_id": str})
    assert list(ds.participants["participant_id"]) == list(df.loc[df["split"] == "train", "participant_id"])
    vol = ds.volume(3)
    raw = np.load(tiny_cohort / "images" / f"sub-{ds.participants['participant_id'][3]}_preproc-cat12vbm_desc-gm_T1w.npy")
    assert vol.shape == (32, 40, 32) and vol.dtype == np.float32 and np.array_equal(vol, raw[0])
    x = ds.descriptors(("CT", "GMV", "SA"))
    roi = pd.read_csv(tiny_cohort / "freesurfer_roi" / "desikan_roi_features.csv", dtype={"participant_id": str}).set_index("participant_id")
    pid = ds.participants["participant_id"][3]
    region = ds.region_names()[10]
    assert x[3, 10, 0] == pytest.approx(roi.loc[pid, f"average_thickness_mm:{region}"], rel=1e-6)
    assert x[3, 10, 2] == pytest.approx(roi.loc[pid, f"surface_area_mm^2:{region}"], rel=1e-6)


def test_channels_are_selected_by_name_not_position(cohort):
    """Rewrite the ROI table with channels in another order; resources.json says so; values must follow."""
    before = OpenBHB(cohort).descriptors(("CT", "SA"))
    res_path = cohort / "resource" / "resources.json"
    res = json.loads(res_path.read_text())
    k = len(res["desikan_roi"]["regions"])
    new_order = list(reversed(ROI_CHANNELS))
    roi_path = cohort / "freesurfer_roi" / "desikan_roi_features.csv"
    roi = pd.read_csv(roi_path, dtype={"participant_id": str})
    vals = roi.iloc[:, 2:].to_numpy().reshape(len(roi), 7, k)
    perm = [ROI_CHANNELS.index(c) for c in new_order]
    out = pd.concat([roi.iloc[:, :2], pd.DataFrame(vals[:, perm, :].reshape(len(roi), -1))], axis=1)
    out.to_csv(roi_path, index=False)
    res["desikan_roi"]["channels"] = new_order
    res_path.write_text(json.dumps(res))
    np.testing.assert_array_equal(OpenBHB(cohort).descriptors(("CT", "SA")), before)


def test_views_dataset_and_loader(tiny_cohort):
    ds = OpenBHB(tiny_cohort, split="train")
    x = ds.descriptors()
    norm = DescriptorNormaliser("zscore").fit(x)
    views = ViewsDataset(ds, views=2, descriptors=norm.transform(x))
    batch = next(iter(make_loader(views, 5, indices=[4, 0, 2, 1, 3])))
    assert batch["views"].shape == (5, 2, 1, 32, 40, 32)
    assert batch["index"].tolist() == [4, 0, 2, 1, 3]
    assert batch["age"][0].item() == pytest.approx(ds.participants["age"][4])
    np.testing.assert_allclose(batch["descriptors"][1].numpy(), norm.transform(x)[0], rtol=1e-6)
    assert np.array_equal(batch["views"][0, 0].numpy(), batch["views"][0, 1].numpy())  # no augmentation: equal views


def test_normaliser_round_trip_and_statistics(tiny_cohort):
    x = OpenBHB(tiny_cohort, split="train").descriptors()
    norm = DescriptorNormaliser("zscore").fit(x)
    z = norm.transform(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)
    again = DescriptorNormaliser.from_state_dict(norm.state_dict())
    np.testing.assert_allclose(again.transform(x), z, rtol=1e-6)
    mm = DescriptorNormaliser("minmax").transform(x)
    assert mm.min(axis=1).max() == 0 and mm.max(axis=1).min() == pytest.approx(1)
    import torch

    torch.save(norm.state_dict(), "/dev/null")  # plain lists: weights_only-safe


def _rewrite_table(root, fn):
    p = root / "participants.tsv"
    df = pd.read_csv(p, sep="\t", dtype={"participant_id": str})
    fn(df).to_csv(p, sep="\t", index=False)


def test_bad_inputs(cohort):
    img = sorted((cohort / "images").iterdir())
    # NaN voxels: the subject is named when its volume is read
    arr = np.load(img[0])
    arr[0, 5, 5, 5] = np.nan
    np.save(img[0], arr)
    pid0 = img[0].name[4:].split("_")[0]
    ds = OpenBHB(cohort)
    i = list(ds.participants["participant_id"]).index(pid0)
    with pytest.raises(DataError, match=f"subject {pid0}.*1 NaN/inf"):
        ds.volume(i)
    # wrong shape
    np.save(img[1], np.zeros((1, 30, 30, 30), np.float32))
    with pytest.raises(DataError, match="differ in shape"):
        OpenBHB(cohort)
    np.save(img[1], np.zeros((1, 32, 40, 32), np.float32))
    # truncated file
    img[2].write_bytes(img[2].read_bytes()[:100])
    with pytest.raises(DataError, match=f"cannot read image of subject {img[2].name[4:].split('_')[0]}"):
        OpenBHB(cohort)
    img[2].unlink()
    with pytest.raises(DataError, match="1 subject.*have no vbm image"):
        OpenBHB(cohort)
    np.save(img[2], np.zeros((1, 32, 40, 32), np.float32))
    np.save(cohort / "images" / "sub-999_preproc-cat12vbm_desc-gm_T1w.npy", np.zeros((1, 32, 40, 32), np.float32))
    with pytest.raises(DataError, match="have no row in .*participants.tsv: .*sub-999"):
        OpenBHB(cohort)
    (cohort / "images" / "sub-999_preproc-cat12vbm_desc-gm_T1w.npy").unlink()


def test_bad_tables(cohort):
    _rewrite_table(cohort, lambda df: df.assign(age=df["age"].astype(object).where(df.index != 2, "forty")))
    with pytest.raises(DataError, match="non-numeric or missing age .*'forty'"):
        OpenBHB(cohort)
    _rewrite_table(cohort, lambda df: df.assign(age=40.0))
    _rewrite_table(cohort, lambda df: pd.concat([df, df.iloc[[0]]]))
    with pytest.raises(DataError, match="duplicate ids"):
        OpenBHB(cohort)
    _rewrite_table(cohort, lambda df: df.drop_duplicates("participant_id"))
    with pytest.raises(DataError, match="split 'validation' .* is empty"):
        OpenBHB(cohort, split="validation")
    (cohort / "resource" / "resources.json").unlink()
    with pytest.raises(DataError, match="resources.json not found"):
        OpenBHB(cohort).descriptors()


def test_missing_roi_channel_and_region_count(cohort):
    res_path = cohort / "resource" / "resources.json"
    res = json.loads(res_path.read_text())
    res["desikan_roi"]["channels"][2] = "mean_thickness"
    res_path.write_text(json.dumps(res))
    with pytest.raises(DataError, match="'average_thickness_mm' \\(CT\\) is not listed"):
        OpenBHB(cohort).descriptors()
    res["desikan_roi"]["regions"] = res["desikan_roi"]["regions"][:60]
    res_path.write_text(json.dumps(res))
    with pytest.raises(DataError, match="476 value columns .* 7 channels x 60 regions"):
        OpenBHB(cohort).descriptors()


def test_open_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="is not a dataset"):
        open_dataset(tmp_path)
