"""Parity of ``anatlearn prep`` with CAT12 on your own subjects, in one command::

    python -m anatlearn.prep.compare PREP_OUT 'cat12/sub-{id}/mri/mwp1sub-{id}_T1w.nii' [--out parity.tsv]

For every subject of ``PREP_OUT/participants.tsv`` (an ``anatlearn prep --modality vbm`` output) the CAT12
modulated GM map named by the pattern (``{id}`` = participant id) is read and compared, on the vbm grid,
with prep's map: Pearson ``r`` inside the MNI152 brain mask, the Dice of the two GM masks (> 0.5) and the
ratio of total GM volumes (prep / CAT12, each the map's sum times the voxel volume). CAT12 maps on another
grid are resampled (linear) by their affine. The per-subject table and the median of each column are
printed (and written to ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from anatlearn.errors import DataError


def compare_maps(prep_out: str | Path, pattern: str) -> pd.DataFrame:
    """One row per subject: ``participant_id``, ``r``, ``dice``, ``volume_ratio`` (module docstring)."""
    from nilearn.image import resample_img

    from anatlearn.prep.pipeline import dice, masked_correlation
    from anatlearn.prep.run import subject_files
    from anatlearn.prep.templates import TARGETS, template_on_grid

    prep_out, grid = Path(prep_out), TARGETS["vbm"]
    table = prep_out / "participants.tsv"
    if not table.is_file():
        raise DataError(f"{table} not found: give the --out directory of `anatlearn prep --modality vbm`")
    ids = pd.read_csv(table, sep="\t", dtype={"participant_id": str})["participant_id"]
    mask = template_on_grid(grid)["mask"]
    rows = []
    for pid in (str(p).removeprefix("sub-") for p in ids):
        ours_path, cat_path = subject_files(prep_out, pid, "vbm")["npy"], Path(pattern.format(id=pid))
        for p in (ours_path, cat_path):
            if not p.is_file():
                raise DataError(f"subject {pid}: {p} not found")
        ours = np.load(ours_path)[0]
        if ours.shape != grid.shape:
            raise DataError(f"{ours_path} has shape {ours.shape}, not the vbm grid {grid.shape} (--target-voxel-mm?)")
        cat = nib.load(cat_path)
        cat = resample_img(cat, target_affine=grid.matrix, target_shape=grid.shape, interpolation="linear",
                           force_resample=True, copy_header=True)
        theirs = np.nan_to_num(cat.get_fdata(dtype=np.float32).reshape(grid.shape))
        rows.append({"participant_id": pid, "r": masked_correlation(ours, theirs, mask), "dice": dice(ours, theirs),
                     "volume_ratio": float(ours.sum() / theirs.sum()) if theirs.sum() > 0 else float("nan")})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m anatlearn.prep.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("prep_out")
    ap.add_argument("cat12_pattern", help="path of each CAT12 mwp1 map with {id} for the participant id")
    ap.add_argument("--out", help="write the per-subject table here (TSV)")
    args = ap.parse_args(argv)
    try:
        df = compare_maps(args.prep_out, args.cat12_pattern)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(df.to_string(index=False, float_format="%.4f"))
    print("median: " + ", ".join(f"{c} {df[c].median():.4f}" for c in ("r", "dice", "volume_ratio")))
    if args.out:
        df.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
