"""Fixtures for ``anatlearn prep``: subjects made from a 4 mm version of the bundled MNI152 template with a
known deformation (see phantom.py here), so each registration takes about a second; and the real head
(Colin27, colin.py here) prepared at the defaults, once per test run, for every test that needs it. The
helper modules of these tests (phantom.py, colin.py) sit beside this file and are imported by name."""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
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


# --- the real head (tests/prep/test_real_head.py) -------------------------------------------------------------
def require_head():
    """Skip without Debian's mricron-data; in CI (CI=1/true or ANATLEARN_REQUIRE_REAL_HEAD=1, set by .ci/run)
    a missing head is a failure."""
    from colin import colin_dir

    if colin_dir() is not None:
        return
    reason = "Colin27 head not installed (apt-get install mricron-data: /usr/share/mricron/templates/ch2*.nii.gz)"
    if os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("ANATLEARN_REQUIRE_REAL_HEAD") == "1":
        pytest.fail(reason + "; required in CI")
    pytest.skip(reason)


def prepare_heads(heads: dict, root: Path, args: list[str], fresh_process: bool = False):
    """``heads`` through ``anatlearn prep`` once: (out dir, stdout, stderr, qc table by id). In this process,
    or with ``fresh_process`` in a new one with the default threading (no ITK thread variable)."""
    from anatlearn.cli import main

    bids = root / "bids"
    lines = ["participant_id\tage"]
    for pid, img in heads.items():
        (bids / f"sub-{pid}" / "anat").mkdir(parents=True)
        nib.save(img, bids / f"sub-{pid}" / "anat" / f"sub-{pid}_T1w.nii.gz")
        lines.append(f"sub-{pid}\t44")
    (bids / "participants.tsv").write_text("\n".join(lines) + "\n")
    out = root / "out"
    cmd = ["prep", "--bids", str(bids), "--out", str(out), *args]
    if fresh_process:
        env = {k: v for k, v in os.environ.items() if k not in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS")}
        proc = subprocess.run([sys.executable, "-m", "anatlearn", *cmd], env=env, capture_output=True, text=True)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            code = main(cmd)
        stdout, stderr = so.getvalue(), se.getvalue()
    assert code == 0, stderr
    qc = pd.read_csv(out / "qc.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    print(qc.drop(columns=["source", "figure"]).to_string())
    return out, stdout, stderr, qc


@pytest.fixture(scope="session")
def defaults_pair(tmp_path_factory):
    """At 1 mm and the defaults (1 mm template, SyN 40,20,0, the 1.5 mm vbm grid): the skull-on head and its
    BET-stripped copy, prepared once (--jobs 2, one thread each)."""
    require_head()
    from colin import load_colin

    heads = {"skull": load_colin("skull", 1.0), "brain": load_colin("brain", 1.0)}
    return prepare_heads(heads, tmp_path_factory.mktemp("colin-defaults"), ["--jobs", "2", "--threads", "1"])


@pytest.fixture(scope="session")
def moved_heads(tmp_path_factory):
    """At the defaults too, in a fresh process with the default threading (--jobs 2 and nothing else): the
    moves ``move<seed>`` of :data:`CI_MOVES`, a rerun of the skull-on head (``skull``, compared byte for byte
    with :func:`defaults_pair`'s) and the ``broken`` copy (2 mm, axes permuted, corner-origin affine)."""
    require_head()
    from colin import CI_MOVES, apply_move, broken, load_colin, random_move

    heads = {f"move{seed}": apply_move(random_move(seed)) for seed in CI_MOVES}
    heads |= {"skull": load_colin("skull", 1.0), "broken": broken(load_colin("skull", 2.0))}
    return prepare_heads(heads, tmp_path_factory.mktemp("colin-moved"), ["--jobs", "2"], fresh_process=True)
