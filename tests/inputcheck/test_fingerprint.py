"""The fingerprint's statistics against what they measure, and where a checkpoint's fingerprint comes from."""

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anatlearn.inputcheck.fingerprint import MeanImage, coarse, fingerprint_from_volumes, volume_stats
from anatlearn.inputcheck.reference import RELEASED_NAME, reference_from_meta, released_reference

SHAPE = (40, 48, 40)


def _blob(center=(20, 24, 20), radius=10.0) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"))
    d = np.sqrt(((ijk - np.array(center)[:, None, None, None]) ** 2).sum(0))
    return np.clip(radius - d, 0, 1).astype(np.float32)


def _ref(mean: np.ndarray, voxel_mm: float = 3.0) -> MeanImage:
    return MeanImage.from_mean(coarse(mean, 1), SHAPE, voxel_mm, 1)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_smoothness_of_smoothed_white_noise_is_its_gaussian_width(sigma):
    """Kiebel et al. 1999: D / V = 2 (1 - exp(-1 / (4 s^2))) for white noise smoothed by a Gaussian of width s."""
    noise = gaussian_filter(np.random.default_rng(0).normal(size=SHAPE), sigma, mode="wrap").astype(np.float32)
    region = np.ones(SHAPE, bool)
    ref = _ref(np.ones(SHAPE, np.float32))
    ref = MeanImage(ref.shape, ref.voxel_mm, 1, ref.coarse_mean, region, region, ~region, ref.com_vox)
    assert volume_stats(noise, ref)["smooth_vox"] == pytest.approx(sigma, rel=0.08)


def test_centre_offset_and_tissue_are_millimetres_and_millilitres():
    blob = _blob()
    ref = _ref(blob)
    moved = np.roll(blob, 4, axis=1)  # 4 voxels of 3 mm
    stats = volume_stats(moved, ref)
    assert stats["offset_mm"] == pytest.approx(12.0, abs=1e-3)
    assert stats["tissue_ml"] == pytest.approx(float(blob.sum()) * 27 / 1000, rel=1e-6)
    assert volume_stats(blob, ref)["corr"] == pytest.approx(1.0)
    assert volume_stats(blob * 7, ref)["q99"] == pytest.approx(7 * volume_stats(blob, ref)["q99"], rel=1e-6)


def test_fingerprint_is_plain_data_that_checkpoints_and_json_keep(tmp_path):
    vols = [_blob(radius=r) for r in (9.0, 10.0, 11.0)]
    fp = fingerprint_from_volumes(vols, coarse(np.mean(vols, 0), 2), SHAPE, 3.0, 2, len(vols))
    assert json.loads(json.dumps(fp)) == fp
    torch.save({"input_fingerprint": fp}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["input_fingerprint"] == fp
    assert fp["stats"]["tissue_ml"]["q00"] == pytest.approx(float(vols[0].sum()) * 27 / 1000, rel=1e-6)


def test_which_reference_a_checkpoint_is_checked_against():
    own = {"stats": {}}
    assert reference_from_meta({"format": "anatlearn", "input_fingerprint": own}, "a.pt").fingerprint is own
    old = reference_from_meta({"format": "anatlearn"}, "runs/old.pt")
    assert old.fingerprint is None and "old.pt has no fingerprint" in old.note
    released = released_reference()
    assert released["shape"] == [121, 145, 121] and released["voxel_mm"] == 1.5
    assert reference_from_meta({}, "anatcl_global_fold0.pth").fingerprint == released  # the released layout
    hub = {"format": "anatlearn-hub", "hub_config": {"input_fingerprint": RELEASED_NAME}}
    assert reference_from_meta(hub, "folder").fingerprint == released
    hub_own = {"format": "anatlearn-hub", "hub_config": {"input_fingerprint": own}}
    assert reference_from_meta(hub_own, "folder").fingerprint is own
