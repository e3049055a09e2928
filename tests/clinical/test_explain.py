"""Region attribution: a model that reads one region only gets all its importance there; aggregation equals
a brute-force sum; IG completeness on a linear encoder; NIfTI atlases and outputs round-trip."""

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from anatlearn.clinical.atlas import nifti_atlas, patch_grid
from anatlearn.clinical.explain import explain_regions
from anatlearn.errors import DataError

SHAPE = (12, 10, 8)


class RegionReader(nn.Module):
    """A nonlinear 'encoder' whose 4 features depend only on the voxels where ``mask`` is set."""

    def __init__(self, mask: np.ndarray):
        super().__init__()
        self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32)))
        self.w = nn.Parameter(torch.tensor([1.0, -0.5, 2.0, 0.3]))

    def forward(self, x):
        voxels = x[:, 0] * self.mask
        mean = voxels.sum(dim=(1, 2, 3)) / self.mask.sum()
        spread = (voxels**2).sum(dim=(1, 2, 3)) / self.mask.sum()
        return torch.tanh(mean[:, None] * self.w + 0.1 * spread[:, None])


def volumes_and_labels(mask, n=24, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    vols = rng.normal(1.0, 0.3, (n, *SHAPE)).astype(np.float32)
    vols[:, mask] -= 0.4 * y[:, None]  # "atrophy" in the region for the positive class
    return vols, y


def test_model_reading_one_region_gets_all_importance():
    atlas = patch_grid(SHAPE, 2)
    region = 5
    mask = atlas.labels == region
    vols, y = volumes_and_labels(mask)
    result = explain_regions(RegionReader(mask), vols, y, atlas=atlas, explain=6, n_steps=16, batch_size=16)
    table = result.table()
    assert table.loc[0, "region"] == atlas.names[region]
    assert table.loc[0, "share"] == pytest.approx(1.0, abs=1e-9)
    assert table.loc[1:, "importance"].abs().max() == 0.0
    assert result.voxel_map[~mask].max() == 0.0 and result.voxel_map[mask].max() > 0
    # completeness: the region's sums add up to the probe score differences (up to quadrature error)
    np.testing.assert_allclose(result.region_sums[:, region], result.score_difference, rtol=0.02, atol=1e-3)


def test_linear_encoder_completeness_and_brute_force_aggregation():
    atlas = patch_grid(SHAPE, 3)
    rng = np.random.default_rng(1)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(SHAPE)), 6))
    vols = rng.normal(0, 1, (20, *SHAPE)).astype(np.float32)
    y = (vols[:, :4].mean(axis=(1, 2, 3)) > 0).astype(int)
    result = explain_regions(encoder, vols, y, atlas=atlas, explain=5, n_steps=8)
    # IG of a linear function is exact: per subject, region sums add up to s(x) - s(x')
    np.testing.assert_allclose(result.region_sums.sum(axis=1), result.score_difference, rtol=1e-4, atol=1e-5)
    maps = rng.normal(size=(3, *SHAPE))
    brute = np.array([[maps[s][atlas.labels == k].sum() for k in range(len(atlas.names))] for s in range(3)])
    np.testing.assert_allclose(atlas.aggregate(maps), brute, rtol=1e-12, atol=1e-12)


def test_nifti_atlas_outputs_and_errors(tmp_path):
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[:6, :, :] = 7
    labels[6:, :5, :] = 3  # the rest stays background (0)
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    (tmp_path / "atlas.tsv").write_text("index\tname\n3\tleft-thing\n7\tright-thing\n")
    atlas = nifti_atlas(path)
    assert atlas.names == ["left-thing", "right-thing"] and atlas.voxel_counts().tolist() == [6 * 5 * 8, 6 * 10 * 8]
    mask = labels == 3
    vols, y = volumes_and_labels(mask, n=12)
    result = explain_regions(RegionReader(mask), vols, y, atlas=atlas, explain=3, n_steps=8)
    summary = result.write(tmp_path / "out")
    assert summary["top_regions"][0]["region"] == "left-thing"
    img = nib.load(str(tmp_path / "out" / "region_importance.nii.gz"))
    np.testing.assert_allclose(img.affine, atlas.affine)
    data = img.get_fdata()
    assert data[labels == 7].max() == 0 and data[labels == 3].min() > 0 and data[labels == 0].max() == 0
    assert (tmp_path / "out" / "regions.png").stat().st_size > 1000
    with pytest.raises(DataError, match="atlas .*atlas.nii.gz has shape"):
        explain_regions(RegionReader(mask), np.zeros((4, 6, 6, 6), np.float32), [0, 1, 0, 1], atlas=atlas)
    nib.save(nib.Nifti1Image(np.full(SHAPE, 0.5, np.float32), np.eye(4)), str(tmp_path / "bad.nii.gz"))
    with pytest.raises(DataError, match="bad.nii.gz must hold non-negative integer labels"):
        nifti_atlas(tmp_path / "bad.nii.gz")
