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
