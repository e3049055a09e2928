"""Data benchmarks: challenge-row un-masking vs nilearn, npy vs NIfTI loading, loader vs model throughput."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from common import Row, fmt_s, interleaved_times

from anatlearn.data import ViewsDataset, make_loader, open_dataset
from anatlearn.data.challenge import Unmasker
from anatlearn.synthetic import generate_cohort
from anatlearn.models import build_encoder


def run(quick: bool = False):
    rows, sections = [], {}
    # 1. Un-masking a challenge row into the full 121x145x121 grid (519,945 voxels in the mask).
    rng = np.random.default_rng(0)
    shape = (121, 145, 121)
    mask = np.zeros(shape, bool)
    mask.ravel()[rng.choice(mask.size, 519_945, replace=False)] = True
    row = rng.normal(size=519_945).astype(np.float32)
    from nilearn.masking import unmask as nl_unmask

    mask_img = nib.Nifti1Image(mask.astype(np.int8), np.diag([1.5, 1.5, 1.5, 1]))
    unmask = Unmasker(mask)  # built once per dataset, as OpenBHBChallenge does
    t = interleaved_times({"ours": lambda: unmask(row), "nilearn": lambda: nl_unmask(row, mask_img)},
                          repeats=3 if quick else 7)
    rows.append(Row("challenge row -> 121x145x121 volume (un-mask)", fmt_s(t["ours"]), fmt_s(t["nilearn"]),
                    f"{t['nilearn'] / t['ours']:.1f}x", ">= 5x", "baseline: nilearn.masking.unmask"))

    with tempfile.TemporaryDirectory() as tmp:
        # 2. Per-volume load time: OpenBHB npy (memory-mapped) vs NIfTI (.nii.gz), same volumes.
        grid = (61, 73, 61) if quick else (121, 145, 121)
        n = 6 if quick else 12
        root = generate_cohort(Path(tmp) / "c", n, grid, seed=0, nifti=True)
        npy, nii = open_dataset(root), open_dataset(root / "bids")
        t = interleaved_times({"npy": lambda: [npy.volume(i) for i in range(n)],
                               "nii": lambda: [nii.volume(i) for i in range(n)]}, repeats=3)
        rows.append(Row(f"load one {grid[0]}x{grid[1]}x{grid[2]} volume", fmt_s(t["npy"] / n), fmt_s(t["nii"] / n),
                        f"{t['nii'] / t['npy']:.1f}x", "", "ours: OpenBHB .npy (mmap); baseline: NIfTI .nii.gz"))

        # 3. Loader samples/s (2 workers) vs model samples/s (ResNet-18 width 0.25 fwd+bwd) at 61x73x61.
        root2 = generate_cohort(Path(tmp) / "d", 32 if quick else 64, (61, 73, 61), seed=0)
        ds = open_dataset(root2)
        views = ViewsDataset(ds, views=2)
        loader = make_loader(views, 16, num_workers=2)
        t0 = time.perf_counter()
        count = sum(b["views"].shape[0] for b in loader)
        loader_rate = count / (time.perf_counter() - t0)
        del loader  # stop its persistent workers before timing anything else
        enc = build_encoder("resnet18", width=0.25)
        x = torch.randn(32, 1, 61, 73, 61)

        def step():
            enc.zero_grad()
            enc(x).sum().backward()

        step_t = interleaved_times({"m": step}, repeats=2)["m"]
        model_rate = 16 / step_t  # 16 subjects x 2 views per step
        rows.append(Row("loader vs model throughput (subjects/s, 61x73x61)", f"{loader_rate:.0f}/s",
                        f"{model_rate:.1f}/s", f"{loader_rate / model_rate:.1f}x", "> 1x (loader not the bottleneck)",
                        "loader: 2 workers, 2 views; model: ResNet-18 w0.25 fwd+bwd"))
    return rows, sections


if __name__ == "__main__":
    from common import main

    main(run)
