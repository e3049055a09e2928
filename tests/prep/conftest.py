"""Fixtures for ``anatlearn prep``: subjects made from a 4 mm version of the bundled MNI152 template with a
known deformation (see phantom.py here), so each registration takes about a second. The helper modules of
these tests (phantom.py, colin.py) sit beside this file and are imported by name."""

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

# one ITK thread: deterministic registrations, and modest CPU use on a shared machine (set before ITK starts)
os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
# importlib import mode puts no test directory on sys.path: the helpers are found through this one
sys.path.insert(0, str(Path(__file__).parent))
pytest.importorskip("ants")

RES = 4.0  # template and target grid resolution of the tests (mm); the defaults are 1 mm / the real grids
# phantoms are skull-stripped: --skull-strip no saves deepbet's ~5 s per subject (auto: test_real_head.py)
FAST = ["--template-resolution", "4", "--target-voxel-mm", "4", "--threads", "1", "--skull-strip", "no"]


def deformed_affine(seed: int, scale: float | None = None) -> np.ndarray:
    from phantom import random_affine

    return random_affine(np.random.default_rng(seed), rotation_deg=10.0, translation_mm=8.0, scaling=0.05, scale=scale)


@pytest.fixture(scope="session")
def phantoms():
    """identity (template itself, noise), deformed (affine + 4 mm smooth warp + bias + noise), scaled (x1.15)."""
    from phantom import make_phantom

    return {
        "identity": make_phantom(RES, seed=0, noise=0.02),
        "deformed": make_phantom(RES, seed=1, affine_mm=deformed_affine(1), warp_mm=4.0, bias=0.2, noise=0.03),
        "scaled": make_phantom(RES, seed=2, affine_mm=deformed_affine(2, scale=1.15), warp_mm=2.0, noise=0.02),
    }


def write_bids(root: Path, images: dict[str, nib.Nifti1Image], ages=None) -> Path:
    root.mkdir(parents=True)
    lines = ["participant_id\tage\tsex\tsite"]
    for i, (pid, img) in enumerate(images.items()):
        anat = root / f"sub-{pid}" / "anat"
        anat.mkdir(parents=True)
        nib.save(img, anat / f"sub-{pid}_T1w.nii.gz")
        lines.append(f"sub-{pid}\t{(ages or {}).get(pid, 30 + i)}\t{'MF'[i % 2]}\tsiteA")
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    return root


def noise_image(shape=(48, 56, 48), seed=5) -> nib.Nifti1Image:
    rng = np.random.default_rng(seed)
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = [-94, -130, -76]
    return nib.Nifti1Image(rng.random(shape).astype(np.float32) * 1000, aff)


@pytest.fixture(scope="session")
def kit():
    """Constants and helpers for the test modules (conftest itself is not importable in importlib mode)."""
    return SimpleNamespace(RES=RES, FAST=FAST, write_bids=write_bids, noise_image=noise_image)
