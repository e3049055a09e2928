"""Write a synthetic cohort a second time as users' data: NIfTI images + FreeSurfer-style aparc.stats."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

APARC_HEADER = ("StructName", "NumVert", "SurfArea", "GrayVol", "ThickAvg", "ThickStd", "MeanCurv", "GausCurv",
                "FoldInd", "CurvInd")


def write_aparc_stats(path: Path, hemi: str, regions, ct, gmv, sa) -> None:
    lines = ["# Table of FreeSurfer cortical parcellation anatomical statistics", f"# hemi {hemi}",
             "# generating_program anatlearn synth (synthetic)", "# ColHeaders " + " ".join(APARC_HEADER)]
    for r, t, v, a in zip(regions, ct, gmv, sa):
        lines.append(f"{r} {int(a / 0.8)} {a:.0f} {v:.0f} {t:.3f} {0.25 * t:.3f} 0.120 0.030 10 1.2")
    path.write_text("\n".join(lines) + "\n")


def write_nifti_layout(root: Path, world, table: pd.DataFrame, images_dir: Path, anatomy: np.ndarray,
                       rng: np.random.Generator) -> None:
    root.mkdir()
    table.to_csv(root / "participants.tsv", sep="\t", index=False)
    n_half = len(world.region_names) // 2
    short = [r.split("-", 1)[1] for r in world.region_names[:n_half]]
    meas = anatomy * np.exp(rng.normal(0, 0.03, anatomy.shape))
    for i, pid in enumerate(table["participant_id"]):
        vol = np.load(images_dir / f"sub-{pid}_preproc-cat12vbm_desc-gm_T1w.npy")[0]
        anat = root / f"sub-{pid}" / "anat"
        anat.mkdir(parents=True)
        nib.save(nib.Nifti1Image(vol, world.affine), anat / f"sub-{pid}_desc-gm_T1w.nii.gz")
        stats = root / "freesurfer" / f"sub-{pid}" / "stats"
        stats.mkdir(parents=True)
        for h, hemi in enumerate(("lh", "rh")):
            sl = slice(h * n_half, (h + 1) * n_half)
            write_aparc_stats(stats / f"{hemi}.aparc.stats", hemi, short, meas[i, sl, 0], meas[i, sl, 1], meas[i, sl, 2])
