"""Do the whole 121x145x121 grid and the released README's 121x128x121 centre crop give the same features?

    python scripts/center_crop_agreement.py --out OUT [--weights W | --width 0.25] [--subjects 64]
        [--shape 121 145 121] [--crop 121 128 121] [--colin]

Embeds a synthetic cohort (``anatlearn.data.generate_cohort``) twice with one encoder, whole and centre-cropped,
and reports the per-subject cosine similarity of the two feature vectors and the agreement of ridge age probes
(anatlearn.evaluate.probes.make_probe) fitted on each: test MAE, correlation and mean gap of their predictions,
and the full-grid probe applied to cropped features. ``--colin`` adds Debian's Colin27 head (mricron-data,
skull-stripped ch2bet) and the MNI152 GM template, resampled to the model's grid: the share of their signal
outside the crop and their cosine. Writes OUT/agreement.json; docs/getting-data.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _probe_agreement(full, crop, ages, train, test) -> dict:
    from anatlearn.evaluate.probes import make_probe

    fitted = {k: make_probe("regression", inner_cv=None).fit(X[train], ages[train]) for k, X in
              (("full", full), ("crop", crop))}
    pred_full, pred_crop = fitted["full"].predict(full[test]), fitted["crop"].predict(crop[test])
    transfer = fitted["full"].predict(crop[test])
    mae = lambda p: float(np.mean(np.abs(p - ages[test])))  # noqa: E731
    return {"n_train": int(train.sum()), "n_test": int(test.sum()), "mae_full": mae(pred_full),
            "mae_crop": mae(pred_crop), "mae_full_probe_on_crop": mae(transfer),
            "prediction_r": float(np.corrcoef(pred_full, pred_crop)[0, 1]),
            "mean_abs_prediction_gap": float(np.mean(np.abs(pred_full - pred_crop)))}


def _summary(cos: np.ndarray) -> dict:
    return {"median": float(np.median(cos)), "min": float(cos.min()), "max": float(cos.max())}


def _cosines(full: np.ndarray, crop: np.ndarray) -> dict:
    """Raw cosine, and cosine after removing each convention's cohort mean: ReLU features share a large
    common component that makes raw cosines high for any two brains; the centred one compares what tells
    subjects apart (what a standardised linear probe sees)."""
    return {"raw": _summary(_cosine(full, crop)),
            "centred": _summary(_cosine(full - full.mean(0), crop - crop.mean(0))),
            "between_subjects_raw_median": float(np.median(_cosine(full, np.roll(full, 1, axis=0))))}


def _real_heads(encoder, crop) -> dict:
    """Colin27 (skull-stripped) and the MNI GM template on the model's grid: signal outside the crop, cosine."""
    import nibabel as nib

    from anatlearn.data.crop import center_crop_box
    from anatlearn.prep.templates import TARGETS, load_template, resample_to_grid

    grid = TARGETS["vbm"]
    heads = {"mni152_gm_template": resample_to_grid(load_template(1.0).gm, grid)}
    colin = Path(os.environ.get("ANATLEARN_MRICRON_DIR", "/usr/share/mricron/templates"))
    if (colin / "ch2bet.nii.gz").is_file():
        t1 = resample_to_grid(nib.load(colin / "ch2bet.nii.gz"), grid)
        heads["colin27_ch2bet_t1"] = t1 / max(float(t1.max()), 1e-6)
    box = center_crop_box(grid.shape, crop)
    out = {}
    for name, vol in heads.items():
        vol = np.clip(vol, 0, None).astype(np.float32)
        full = encoder.transform({name: vol}).to_numpy()
        cropped = encoder.transform({name: np.ascontiguousarray(vol[box])}).to_numpy()
        out[name] = {"signal_outside_crop": float(1 - vol[box].sum() / vol.sum()),
                     "cosine": float(_cosine(full, cropped)[0])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--weights", help="Checkpoint or folder (default: a randomly initialised ResNet-18).")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--subjects", type=int, default=64)
    ap.add_argument("--shape", type=int, nargs=3, default=(121, 145, 121))
    ap.add_argument("--crop", type=int, nargs=3, default=(121, 128, 121))
    ap.add_argument("--data", type=Path, help="An existing cohort (default: generate one in OUT/cohort).")
    ap.add_argument("--colin", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from anatlearn.data import open_dataset
    from anatlearn.synthetic import generate_cohort
    from anatlearn.embed import AnatEncoder
    from anatlearn.models import build_model, default_model_config

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or generate_cohort(args.out / "cohort", n_subjects=args.subjects, shape=args.shape,
                                        seed=args.seed, overwrite=True)
    torch.manual_seed(args.seed)
    weights = args.weights or build_model(default_model_config("resnet18", args.width)).eval()
    encoder = AnatEncoder(weights, batch_size=4)
    full_ds = open_dataset(data)
    full = encoder.transform(full_ds).to_numpy()
    crop = encoder.transform(open_dataset(data, center_crop=args.crop)).to_numpy()
    ages = full_ds.participants["age"].to_numpy(dtype=float)
    train = (full_ds.participants["split"] == "train").to_numpy()
    from anatlearn.data.crop import center_crop_box

    box = center_crop_box(full_ds.shape, args.crop)
    outside = [1 - float(np.clip(v, 0, None)[box].sum() / np.clip(v, 0, None).sum())
               for v in (full_ds.volume(i) for i in range(min(16, len(full_ds))))]
    result = {"weights": str(args.weights or f"random init, resnet18 width {args.width}, seed {args.seed}"),
              "cohort_signal_outside_crop_mean": float(np.mean(outside)),
              "grid": list(full_ds.shape), "crop": list(args.crop), "subjects": len(full_ds),
              "cosine": _cosines(full, crop), "age_probe": _probe_agreement(full, crop, ages, train, ~train)}
    if args.colin:
        result["real_heads"] = _real_heads(encoder, args.crop)
    (args.out / "agreement.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
