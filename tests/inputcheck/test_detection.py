"""The input check's detection rates on a generated cohort (issue 35, part 4; docs/evaluation.md).

The tolerances of anatlearn.inputcheck.check were set on world seeds 0 to 3; this test uses seed 5, never
looked at before it was written here (like seed 3, its held-out site is much smoother than the training sites).
The fingerprint is the one ``pretrain`` stores (``build_fingerprint`` of the training split); the held-out
subjects are the healthy cohort's internal and external test splits (the external site was never seen) and
a downstream cohort of the same world, patients included.
Required: clean maps flagged at most 5 %; each manipulation flagged in at least 90 % of subjects.
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift

from anatlearn.data import open_dataset
from anatlearn.inputcheck import build_fingerprint, check_volume
from anatlearn.inputcheck.fingerprint import grid_voxel_mm

SEED = 5  # tuned on seeds 0-3 only (docs/evaluation.md)
SHAPE = (61, 73, 61)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from anatlearn.synthetic import generate_cohort

    root = tmp_path_factory.mktemp("check")
    healthy = generate_cohort(root / "healthy", 120, SHAPE, seed=SEED, n_sites=4)
    down = generate_cohort(root / "down", 60, SHAPE, seed=SEED, n_sites=4, diseases=("AD-like", "SCZ-like"))
    fp = build_fingerprint(open_dataset(healthy, split="train"))
    held = [open_dataset(healthy, split=s) for s in ("internal_test", "external_test")]
    held.append(open_dataset(down, require_age=False))
    return fp, [d.volume(i) for d in held for i in range(len(d))]


def _shift(rng, vox_mm):
    def move(v):
        d = rng.normal(size=3)
        return shift(v, d / np.linalg.norm(d) * 10.0 / vox_mm, order=1)  # 10 mm in a random direction
    return move


def _rate(fp, vols, manipulate) -> float:
    return float(np.mean([bool(check_volume(manipulate(v), fp)[1]) for v in vols]))


def test_clean_held_out_maps_pass_and_manipulated_maps_are_flagged(world):
    fp, vols = world
    rng = np.random.default_rng(SEED)
    manipulations = {
        "intensities x100": lambda v: v * 100,
        "Gaussian smoothing, sigma 2 voxels": lambda v: gaussian_filter(v, 2.0),
        "shift of 10 mm": _shift(rng, grid_voxel_mm(vols[0].shape)),
        "pure noise": lambda v: np.abs(rng.normal(0, 1, v.shape)).astype(np.float32) * float(v.mean()),
        "empty (all zeros)": np.zeros_like,
    }
    clean = _rate(fp, vols, lambda v: v)
    rates = {name: _rate(fp, vols, f) for name, f in manipulations.items()}
    print(f"\nseed {SEED}, {len(vols)} held-out subjects: clean flagged {clean:.1%}; "
          + "; ".join(f"{k} flagged {r:.1%}" for k, r in rates.items()))
    assert len(vols) >= 80
    assert clean <= 0.05
    assert all(r >= 0.9 for r in rates.values()), rates


def test_a_training_map_passes_its_own_fingerprint_and_reasons_are_words(world):
    fp, vols = world
    v = vols[0]
    assert check_volume(v, fp)[1] == []
    reasons = check_volume(v * 100, fp)[1]
    assert any("100x the training maps'" in r or "about 1" in r for r in reasons), reasons
    assert any("smoothed" in r for r in check_volume(gaussian_filter(v, 2.0), fp)[1])
    assert any("not registered to MNI" in r for r in check_volume(shift(v, (0, 15.0 / grid_voxel_mm(v.shape), 0), order=1), fp)[1])
    assert check_volume(np.zeros_like(v), fp)[1][0].startswith("an empty")
