import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from anatlearn.data import open_dataset
from anatlearn.data.challenge import FULL_SIZES, OpenBHBChallenge, mask_volume, segment_offsets, unmask
from anatlearn.data.freesurfer import parse_aparc_stats, subject_descriptors
from anatlearn.data.nifti import NiftiDataset
from anatlearn.data.regions import ROI_CHANNELS
from anatlearn.errors import DataError


def test_full_row_length():
    assert sum(FULL_SIZES.values()) == 3_659_572


def test_unmask_round_trip_and_nilearn_agreement():
    from nilearn.masking import unmask as nl_unmask

    rng = np.random.default_rng(0)
    mask = rng.random((9, 11, 7)) > 0.4
    vol = rng.normal(size=mask.shape).astype(np.float32) * mask
    row = mask_volume(vol, mask)
    np.testing.assert_array_equal(unmask(row, mask), vol)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    ref = nl_unmask(row, nib.Nifti1Image(mask.astype(np.int8), affine)).get_fdata()
    np.testing.assert_array_equal(unmask(row, mask), ref)
    # the public loader's transpose(2, 0, 1) + reshape does NOT give the volume back
    scrambled = unmask(row, mask).transpose(2, 0, 1).reshape(mask.shape)
    assert not np.array_equal(scrambled, vol)


def test_challenge_dataset(tiny_cohort, tmp_path):
    ds = open_dataset(tiny_cohort)
    vols = np.stack([ds.volume(i) for i in range(len(ds))])
    mask = vols.mean(0) > 0.05
    x = ds.descriptors(ROI_CHANNELS)  # (n, 68, 7)
    off = segment_offsets(mask)
    n = len(ds)
    rows = np.zeros((n, off["destrieux_roi"].stop), np.float32)
    rows[:, off["vbm"]] = vols[:, mask]
    rows[:, off["desikan_roi"]] = x.transpose(0, 2, 1).reshape(n, -1)  # channel-major
    np.save(tmp_path / "rows.npy", rows)
    ds.participants.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    ch = OpenBHBChallenge(tmp_path / "rows.npy", tmp_path / "participants.tsv", mask, channels=list(ROI_CHANNELS),
                          split="train")
    i = 2
    pid = ch.participants["participant_id"][i]
    j = list(ds.participants["participant_id"]).index(pid)
    np.testing.assert_array_equal(ch.volume(i), vols[j] * mask)
    np.testing.assert_allclose(ch.descriptors(("CT", "SA"))[i], ds.descriptors(("CT", "SA"))[j], rtol=1e-6)
    bigger = mask.copy()
    bigger[0, 0, 0] = not bigger[0, 0, 0]  # a mask that is not the one the rows were made with
    with pytest.raises(DataError, match="rows have"):
        OpenBHBChallenge(tmp_path / "rows.npy", tmp_path / "participants.tsv", bigger)


STATS = """# Table of FreeSurfer cortical parcellation anatomical statistics
# ColHeaders StructName NumVert SurfArea GrayVol ThickAvg ThickStd MeanCurv GausCurv FoldInd CurvInd
bankssts 1400 950 2300 2.512 0.500 0.110 0.020 9 1.1
cuneus 2000 1400 3100 1.900 0.400 0.130 0.030 12 1.5
"""


def test_aparc_stats_parsing(tmp_path):
    (tmp_path / "lh.aparc.stats").write_text(STATS)
    (tmp_path / "rh.aparc.stats").write_text(STATS.replace("2.512", "2.600"))
    table = parse_aparc_stats(tmp_path / "lh.aparc.stats")
    assert table["cuneus"]["GrayVol"] == 3100 and table["bankssts"]["ThickAvg"] == 2.512
    x, regions = subject_descriptors(tmp_path)
    assert regions == ["lh-bankssts", "lh-cuneus", "rh-bankssts", "rh-cuneus"]
    np.testing.assert_allclose(x[0], [2.512, 2300, 950])
    np.testing.assert_allclose(x[2], [2.600, 2300, 950])
    (tmp_path / "rh.aparc.stats").unlink()
    with pytest.raises(DataError, match="rh.aparc.stats"):
        subject_descriptors(tmp_path)


@pytest.fixture(scope="module")
def nifti_cohort(tmp_path_factory):
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("n") / "c", 6, (32, 36, 32), seed=4, nifti=True) / "bids"


def test_nifti_reader_matches_npy(nifti_cohort):
    a, b = open_dataset(nifti_cohort.parent), open_dataset(nifti_cohort)
    assert isinstance(b, NiftiDataset)
    np.testing.assert_array_equal(a.volume(1), b.volume(1))
    assert b.descriptors().shape == (6, 68, 3) and len(b.region_names()) == 68


def test_nifti_bad_inputs(nifti_cohort, tmp_path):
    import shutil

    root = tmp_path / "n"
    shutil.copytree(nifti_cohort, root)
    img = sorted(root.glob("sub-*/anat/*.nii.gz"))
    nii = nib.load(img[1])
    nib.save(nib.Nifti1Image(np.asarray(nii.dataobj), nii.affine @ np.diag([1, 1, 1.1, 1])), img[1])
    with pytest.raises(DataError, match="different affine"):
        NiftiDataset(root)
    assert NiftiDataset(root, resample=True).volume(1).shape == (32, 36, 32)
    nib.save(nib.Nifti1Image(np.zeros((32, 36, 32, 2), np.float32), nii.affine), img[1])
    with pytest.raises(DataError, match="4-D"):
        NiftiDataset(root)
    img[1].write_bytes(b"")
    with pytest.raises(DataError, match="cannot read NIfTI"):
        NiftiDataset(root)
    shutil.rmtree(img[1].parent.parent)
    with pytest.raises(DataError, match="1 subject.*no NIfTI image"):
        NiftiDataset(root)
    p = root / "participants.tsv"
    df = pd.read_csv(p, sep="\t", dtype={"participant_id": str})
    df[df["participant_id"] != img[1].name[4:].split("_")[0]].to_csv(p, sep="\t", index=False)
    ds = NiftiDataset(root)
    shutil.rmtree(root / "freesurfer" / f"sub-{ds.participants['participant_id'][0]}")
    with pytest.raises(DataError, match="no FreeSurfer stats directory for subject"):
        ds.descriptors()
