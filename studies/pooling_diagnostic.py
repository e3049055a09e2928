"""Diagnostic outside the study's protocol (docs/study.md, run 1): does global average pooling bottleneck
regional anatomy? Anatomy-recovery R^2 (GMV, CT, SA) on the downstream cohort from the same frozen encoders
(random init and the positive control at 30 epochs), their last feature map average-pooled on a g x g x g
grid (g = 1 is the encoder's own global pool).

    python -m studies.pooling_diagnostic STUDY_DIR [GRIDS]      # e.g. study-out 1,2,3

Writes STUDY_DIR/results/pooling_diagnostic.tsv."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def main(argv=None) -> None:
    import torch

    from anatlearn.data import open_dataset
    from anatlearn.embed import AnatEncoder
    from anatlearn.evaluate import anatomy_recovery, truth_targets
    from anatlearn.study.cells import random_init_checkpoint
    from anatlearn.study.grid import settings_from_dict

    argv = sys.argv[1:] if argv is None else list(argv)
    torch.set_num_threads(2)
    out = Path(argv[0])
    tmp = Path(tempfile.mkdtemp())
    ds = open_dataset(out / "data/downstream", require_age=False)
    truth = truth_targets(out / "data/downstream")
    grids = [int(g) for g in argv[1].split(",")] if len(argv) > 1 else [1, 2, 3]
    def feats(weights):
        enc = AnatEncoder(weights, batch_size=16, device="cpu", jit=False)
        model = enc.model
        grabbed = []
        mods = [m for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool3d)]
        h = mods[0].register_forward_hook(lambda m, i, o: grabbed.append(i[0].detach().float()))
        f = enc.transform(ds)
        h.remove()
        maps = torch.cat(grabbed)
        res = {}
        for g in grids:
            p = torch.nn.functional.adaptive_avg_pool3d(maps, g).flatten(1).numpy()
            res[g] = pd.DataFrame(p, index=f.index)
        return res
    rows = []
    S = settings_from_dict(json.loads((out / "study.json").read_text())["settings"])
    cells = [("random-init", k, random_init_checkpoint(tmp / f"random-init-{k}.pt", S, k)) for k in range(3)] + \
            [("gmv-regression@30", k, out / f"cells/gmv-regression/seed-{k}/run/checkpoints/last.pt") for k in range(3)]
    for name, seed, w in cells:
        t = time.time()
        for g, f in feats(w).items():
            r = {t_: anatomy_recovery(f, truth[t_], n_splits=5, seed=0)["r2_mean"] for t_ in ("GMV", "CT", "SA")}
            rows.append({"encoder": name, "seed": seed, "pool": f"{g}x{g}x{g}", "dim": f.shape[1], **r})
            print(rows[-1], f"{time.time()-t:.0f}s", flush=True)
    df = pd.DataFrame(rows)
    print(df.groupby(["encoder", "pool"])[["GMV", "CT", "SA"]].agg(["mean", "std"]).round(3).to_string())
    df.to_csv(out / "results" / "pooling_diagnostic.tsv", sep="\t", index=False)


if __name__ == "__main__":
    main()
