"""The skull-or-not decision's formula against a brute-force count, the choices, and a missing deepbet as one
clear error before any subject starts (deepbet itself runs on the real head: test_real_head.py)."""

import numpy as np
import pytest

from anatlearn.errors import ConfigError


def test_outside_fraction_matches_brute_force():
    from anatlearn.prep.skullstrip import outside_fraction

    rng = np.random.default_rng(0)
    data = np.zeros((30, 32, 28), np.float32)
    data[3:27, 3:29, 3:25] = 50 + rng.random((24, 26, 22))  # a "head"
    mask = np.zeros_like(data)
    mask[10:20, 10:22, 9:19] = 1  # its "brain"
    zooms = (2.0, 1.5, 1.0)
    # brute force: distance (mm) from each voxel to the nearest brain voxel, foreground above 20 % of p99.5
    fg = data > 0.2 * np.percentile(data[data > 0], 99.5)
    brain = np.argwhere(mask > 0.5) * zooms
    far = 0
    for v in np.argwhere(fg):
        far += np.sqrt((((brain - v * zooms) ** 2).sum(axis=1)).min()) > 5.0
    expected = far / fg.sum()
    assert outside_fraction(data, mask, zooms, 5.0) == pytest.approx(expected, abs=1e-9)
    assert 0.3 < expected < 1.0
    # a skull-stripped image (nothing bright outside its brain) and an empty mask
    assert outside_fraction(data * mask, mask, zooms) == 0.0
    assert outside_fraction(data, np.zeros_like(mask), zooms) == 1.0


def test_brain_outline_drops_the_csf_shell_and_bridges_sulci():
    """A ball of "parenchyma" (WM core, GM rim) with a 2 mm-wide "sulcus" cut into it, inside a mask that
    also keeps a 3 mm shell of "CSF": the outline is the ball with its sulcus filled below the mouth (a
    closing with a 3 mm ball bridges gaps up to 6 mm), and none of the shell, at anisotropic voxels."""
    from anatlearn.prep.skullstrip import brain_outline

    zooms = (1.0, 1.25, 1.0)
    shape = (64, 52, 64)
    xyz = np.stack(np.meshgrid(*[(np.arange(n) - n / 2) * z for n, z in zip(shape, zooms)], indexing="ij"))
    r = np.sqrt((xyz ** 2).sum(axis=0))
    rng = np.random.default_rng(1)
    data = np.where(r <= 15, 100.0, np.where(r <= 22, 60.0, np.where(r <= 25, 15.0, 0.0)))
    sulcus = (np.abs(xyz[0]) <= 1.0) & (xyz[2] > 12) & (r > 15) & (r <= 22)  # 2 mm wide, from the surface in
    data[sulcus] = 15.0
    data = data + rng.normal(0, 2, shape)
    support = (r <= 25).astype(np.float32)
    out = brain_outline(data, support, zooms)
    assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 1.0}
    ball = r <= 22
    # the closing rounds the ball's surface by less than a voxel: only its surface voxels may differ
    assert np.logical_and(out > 0, r > 23).sum() == 0  # no shell
    # the sulcus bridged, but for its mouth: a closing leaves a notch within ~2 mm of a convex surface
    assert out[sulcus & (r <= 20)].mean() > 0.99 and out[sulcus].mean() > 0.75
    assert np.logical_and(ball, out == 0).sum() / ball.sum() < 0.02
    # nothing outside the support, and a mask too small to classify is returned as it is
    assert np.logical_and(out > 0, support == 0).sum() == 0
    tiny = np.zeros(shape, np.float32)
    tiny[30:33, 25:28, 30:33] = 1
    assert np.array_equal(brain_outline(data, tiny, zooms), tiny)


def test_choices_and_no_runs_nothing():
    import nibabel as nib

    from anatlearn.prep.pipeline import PrepConfig
    from anatlearn.prep.skullstrip import extract_brain

    with pytest.raises(ConfigError, match="unknown --skull-strip 'maybe'"):
        PrepConfig(skull_strip="maybe")
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    res = extract_brain(img, "no")
    assert not res.applied and res.mask is None and res.decision == "no"


def test_missing_deepbet_is_one_clear_error(monkeypatch):
    import importlib.util

    from anatlearn.prep import require_ants

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepbet" else real(name, *a))
    with pytest.raises(ConfigError, match="--skull-strip auto needs deepbet .*pip install --no-deps deepbet==1.0.2"):
        require_ants("auto")
    require_ants("no")  # a skull-stripped study does not need it
