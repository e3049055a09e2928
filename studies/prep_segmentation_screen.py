"""Issue 39, second round: screen segmentation candidates on the development heads with each head's
registration computed once and reused, so that only what segmentation sees (or how) differs.

A candidate is a ``+``-joined list of changes applied around ``prepare_subject``'s Atropos call:
``nocut`` (Atropos sees the N4 image inside the extractor's mask, not cut to the outline), ``sS`` (a plain
Gaussian of sigma S mm), ``sSm`` (the same inside the brain's support only), ``mrfB`` (MRF weight B),
``pwW`` (prior weight W); ``base`` changes nothing. The candidates were screened on the code before the
smoothing became prep's default, so this script prepares with ``segmentation_smoothing=0`` and applies
its own changes on top. The plan and the table: docs/prep-moves/plan-session2.md
and screening-session2.csv::

    python -m studies.prep_segmentation_screen run --out RESULTS --inputs INPUTS --head move-101 --candidate s1.0m
    python -m studies.prep_segmentation_screen table --out RESULTS

``INPUTS`` is a folder of ``studies.prep_moves`` inputs (``skull``, ``shift-half``, ``move-<seed>``);
``brain`` (the BET-stripped head) is read from mricron-data. Registrations are kept in ``RESULTS/registration``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("brain", "shift-half", "move-101", "move-102", "move-103", "move-104")


def _patch(candidate: str, cache: Path):
    """Cache ``ants.registration`` in ``cache`` and wrap ``ants.atropos`` with ``candidate``'s changes."""
    import ants

    from anatlearn.prep import pipeline

    register, atropos, outline = ants.registration, ants.atropos, pipeline.brain_outline
    stash = {}

    def cached_registration(fixed, moving, type_of_transform, mask, outprefix, **kw):
        if (cache / "reg.json").exists():
            names = json.loads((cache / "reg.json").read_text())
            for f in cache.iterdir():
                if f.name != "reg.json":
                    shutil.copy(f, outprefix + f.name)
            return {k: [outprefix + b for b in v] for k, v in names.items()}
        reg = register(fixed, moving, type_of_transform=type_of_transform, mask=mask, outprefix=outprefix, **kw)
        cache.mkdir(parents=True, exist_ok=True)
        names = {k: [p[len(outprefix):] for p in reg[k]] for k in ("fwdtransforms", "invtransforms")}
        for k in names:
            for p in reg[k]:
                shutil.copy(p, cache / p[len(outprefix):])
        (cache / "reg.json").write_text(json.dumps(names))
        return reg

    def keep_n4(data, support, zooms, *a, **k):
        stash["n4"], stash["support"] = data.copy(), support.copy()
        return outline(data, support, zooms, *a, **k)

    def changed_atropos(a, x, i, m, c, priorweight, r):
        from anatlearn.prep.filters import smooth_inside

        for change in candidate.split("+"):
            if change == "nocut" and "n4" in stash:
                a = a.new_image_like((stash["n4"] * stash["support"]).astype(np.float32))
            elif change.startswith("s") and change[1:].rstrip("m").replace(".", "").isdigit():
                sigma = float(change[1:].rstrip("m"))
                a = smooth_inside(a, sigma) if change.endswith("m") else ants.smooth_image(
                    a, sigma, sigma_in_physical_coordinates=True)
            elif change.startswith("mrf"):
                m = f"[{change[3:]},1x1x1]"
            elif change.startswith("pw"):
                priorweight = float(change[2:])
        return atropos(a=a, x=x, i=i, m=m, c=c, priorweight=priorweight, r=r)

    ants.registration, ants.atropos, pipeline.brain_outline = cached_registration, changed_atropos, keep_n4


def run(out: Path, inputs: Path, head: str, candidate: str) -> None:
    import nibabel as nib

    sys.path.insert(0, str(ROOT / "tests" / "prep"))
    from colin import load_colin

    from anatlearn.prep.pipeline import PrepConfig, configure_threads, prepare_subject

    dest = out / candidate / head
    if (dest / "gm.npy").exists():
        return
    configure_threads(1)
    _patch(candidate, out / "registration" / head)
    img = load_colin("brain", 1.0) if head == "brain" else nib.load(inputs / f"{head}.nii.gz")
    res = prepare_subject(img, PrepConfig(qc_figures=False, segmentation_smoothing=0.0))
    dest.mkdir(parents=True, exist_ok=True)
    np.save(dest / "gm.npy", res.volume)
    (dest / "qc.json").write_text(json.dumps({"native_gm_ml": res.native_gm_ml, "jacobian_mean": res.jacobian_mean}))


def table(out: Path):
    import pandas as pd

    from anatlearn.prep.pipeline import PrepConfig
    from anatlearn.prep.templates import template_on_grid
    from studies.prep_moves import _move, agreement

    mask = template_on_grid(PrepConfig().grid)["mask"]
    rows = []
    for cand in sorted(d for d in out.iterdir() if (d / "skull" / "gm.npy").exists()):
        ref, rq = np.load(cand / "skull" / "gm.npy"), json.loads((cand / "skull" / "qc.json").read_text())
        for head in HEADS:
            if not (cand / head / "gm.npy").exists():
                continue
            gm, q = np.load(cand / head / "gm.npy"), json.loads((cand / head / "qc.json").read_text())
            det = 1.0 if head == "brain" else _move(head).det
            found = agreement(gm, q, ref, rq, det, mask)
            rows.append({"candidate": cand.name, "head": head, "unmoved_native_gm_ml": round(rq["native_gm_ml"], 1),
                         **{k: found[k] for k in ("r", "native_gm_error", "volume_error", "jacobian_error")}})
    df = pd.DataFrame(rows)
    df.to_csv(out / "screening.csv", index=False)
    print(df.to_string(index=False))
    return df


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["run", "table"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--inputs", type=Path)
    p.add_argument("--head", choices=("skull", *HEADS))
    p.add_argument("--candidate", default="base")
    a = p.parse_args(argv)
    if a.action == "run":
        run(a.out, a.inputs, a.head, a.candidate)
    else:
        table(a.out)


if __name__ == "__main__":
    main()
