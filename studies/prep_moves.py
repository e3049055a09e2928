"""Issue 39: does the same head in another position give the same map?

Colin27 (tests/prep/colin.py) under a family of moves drawn from seeds (rotation up to 15 degrees about a
random axis, scales 0.95-1.05 along the head's axes, shift up to 15 mm, smooth bias up to +-25 %, linear
interpolation), each prepared by ``anatlearn prep --target vbm`` at the defaults, next to the unmoved head.
For each move: r of the modulated GM maps against the unmoved head's (inside the template's brain mask on
the 1.5 mm grid), the total modulated GM ratio against the move's determinant, the native GM ratio, and
the Jacobian means.

One prepared subject per output folder, so the run is resumable and several code versions (``--code``: a
checkout of another commit, for bisection) can be measured side by side::

    python -m studies.prep_moves run --out RESULTS --seeds 101 102 [--half-voxel] [--stripped] [--code CHECKOUT] [--label NAME]
    python -m studies.prep_moves table --out RESULTS --label NAME

``run`` prepares ``skull`` (unmoved) and each ``move-<seed>`` through the CLI of the code under ``--code``
(default: this checkout), with ``--threads 1`` (older code without a fixed seed still draws one from the
clock: its results are one draw). ``table`` writes ``RESULTS/<label>/table.csv`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GM = "preproc-cat12vbm_desc-gm_T1w.npy"


def _colin():
    sys.path.insert(0, str(ROOT / "tests" / "prep"))
    import colin

    return colin


# a control: the unmoved head shifted by half a voxel along each axis, no bias: linear interpolation at the
# point of its strongest smoothing (each output voxel the mean of 8 neighbours), nothing else
HALF_VOXEL = "shift-half"


# the unmoved heads: skull-on (the reference of every move) and its BET-stripped copy (skull-on/stripped agreement)
STILL = ("skull", "brain")


def _move(name: str):
    colin = _colin()
    if name == HALF_VOXEL:
        return colin.Move(0, (1.0, 0.0, 0.0), 0.0, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), 0.0)
    return colin.random_move(int(name.split("-")[1]))


def _input(inputs: Path, name: str) -> Path:
    """The NIfTI of ``skull`` or ``move-<seed>``, written once."""
    import nibabel as nib

    colin = _colin()
    path = inputs / f"{name}.nii.gz"
    if not path.exists():
        inputs.mkdir(parents=True, exist_ok=True)
        img = colin.load_colin(name, 1.0) if name in STILL else colin.apply_move(_move(name))
        tmp = path.with_name(f"{name}.{os.getpid()}.tmp.nii.gz")
        nib.save(img, tmp)
        tmp.rename(path)
    return path


def prepare(out: Path, name: str, code: Path, extra: list[str]) -> Path:
    """``name`` through ``anatlearn prep`` of the checkout ``code`` into ``out/name`` (skipped when done)."""
    dest = out / name
    if (dest / f"sub-{name.replace('-', '')}" / f"sub-{name.replace('-', '')}_{GM}").exists():
        return dest
    image = _input(out.parent / "inputs", name)
    work = out / f".{name}-work"
    work.mkdir(parents=True, exist_ok=True)
    pid = name.replace("-", "")
    (work / "list.csv").write_text(f"participant_id,path,age\nsub-{pid},{image},44\n")
    env = {**os.environ, "PYTHONPATH": str(code), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "anatlearn", "prep", "--images", str(work / "list.csv"),
                           "--out", str(work / "out"), "--target", "vbm", "--threads", "1", *extra],
                          env=env, cwd=code, capture_output=True, text=True)
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr + f"\nwall {time.time() - t0:.0f} s\n")
    if proc.returncode != 0:
        raise SystemExit(f"{name}: prep failed, see {out / (name + '.log')}")
    (work / "out").rename(dest)
    return dest


def _subject(out: Path, name: str):
    pid = name.replace("-", "")
    d = out / name / f"sub-{pid}"
    qc = json.loads((d / f"sub-{pid}_qc.json").read_text())
    return np.load(d / f"sub-{pid}_{GM}")[0], qc


def agreement(gm, qc: dict, ref, ref_qc: dict, det: float, mask) -> dict:
    """A prepared head against the unmoved one, for a move of determinant ``det``: r of the modulated GM maps
    inside ``mask``, and the modulated total's, native GM's and mean Jacobian's ratios / ``det`` - 1."""
    from anatlearn.prep.pipeline import masked_correlation

    return {"r": round(masked_correlation(gm, ref, mask), 4),
            "volume_error": round(float(gm.sum() / ref.sum()) / det - 1, 4),
            "native_gm_error": round(qc["native_gm_ml"] / ref_qc["native_gm_ml"] / det - 1, 4),
            "jacobian_error": round(qc["jacobian_mean"] / ref_qc["jacobian_mean"] / det - 1, 4)}


def table(out: Path):
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from anatlearn.prep.pipeline import PrepConfig, masked_correlation
    from anatlearn.prep.templates import template_on_grid

    mask = template_on_grid(PrepConfig().grid)["mask"]
    ref, ref_qc = _subject(out, "skull")
    rows = []
    for d in sorted(out.glob("move-*")) + sorted(out.glob(HALF_VOXEL)):
        if not d.is_dir():
            continue
        move = _move(d.name)
        seed = d.name.split("-", 1)[1] if d.name == HALF_VOXEL else move.seed
        gm, qc = _subject(out, d.name)
        found = agreement(gm, qc, ref, ref_qc, move.det, mask)
        rows.append({"seed": seed, "angle_deg": round(move.angle_deg, 1), "det": round(move.det, 4),
                     "shift_mm": round(float(np.linalg.norm(move.shift_mm)), 1), "bias": round(move.bias, 3),
                     "r": found["r"], "gm_ratio": round(float(gm.sum() / ref.sum()), 4),
                     "volume_error": found["volume_error"], "native_gm_error": found["native_gm_error"],
                     "jacobian_mean": round(qc["jacobian_mean"], 4), "jacobian_ref": round(ref_qc["jacobian_mean"], 4),
                     "jacobian_error": found["jacobian_error"],
                     "native_gm_ml": round(qc["native_gm_ml"], 1), "ref_native_gm_ml": round(ref_qc["native_gm_ml"], 1)})
    df = pd.DataFrame(rows)
    df.to_csv(out / "table.csv", index=False)
    print(df.to_string(index=False))
    cols = ["seed", "angle_deg", "det", "shift_mm", "bias", "r", "volume_error", "native_gm_error", "jacobian_mean",
            "jacobian_error"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(row[c]) for c in cols) + " |" for row in rows]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    if (out / "brain").is_dir():
        gm, qc = _subject(out, "brain")
        print(f"skull-on vs stripped: r {masked_correlation(gm, ref, mask):.4f}, native GM ratio "
              f"{qc['native_gm_ml'] / ref_qc['native_gm_ml']:.4f}, jacobian_mean ratio "
              f"{qc['jacobian_mean'] / ref_qc['jacobian_mean']:.4f}")
    if len(df):
        print(f"min r {df.r.min():.4f}, median r {df.r.median():.4f}, max |volume error| "
              f"{df.volume_error.abs().max():.4f}, median |volume error| {df.volume_error.abs().median():.4f}")
    return df


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["run", "table", "inputs"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--label", default="head")
    p.add_argument("--seeds", type=int, nargs="*", default=[])
    p.add_argument("--code", type=Path, default=ROOT)
    p.add_argument("--no-reference", action="store_true", help="leave the unmoved head to another run")
    p.add_argument("--half-voxel", action="store_true", help=f"prepare the control {HALF_VOXEL!r} too")
    p.add_argument("--stripped", action="store_true", help="prepare the BET-stripped head 'brain' too")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more anatlearn prep options")
    a = p.parse_args(argv)
    out = a.out / a.label
    names = ([] if a.no_reference else ["skull"]) + (["brain"] if a.stripped else [])
    names += [f"move-{s}" for s in a.seeds] + ([HALF_VOXEL] if a.half_voxel else [])
    if a.action == "inputs":
        for n in names:
            _input(a.out / "inputs", n)
    elif a.action == "run":
        for n in names:
            prepare(out, n, a.code.resolve(), a.extra)
            print(f"{a.label}: {n} done", flush=True)
        if (out / "skull").is_dir():
            table(out)
    else:
        table(out)


if __name__ == "__main__":
    main()
