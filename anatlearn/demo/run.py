"""``anatlearn demo``: the synthetic benchmark of what anatomy-informed pretraining buys.

1. Generate a healthy pretraining cohort (several sites, train / internal / external-site splits), a
   downstream cohort (AD-like and SCZ-like patients with matched controls and clinical scores) and a
   test-retest re-acquisition of the downstream cohort (same subjects, fresh scan noise).
2. Pretrain every method with the same budget, seed and augmentations, plus a random-init encoder.
3. Embed every cohort with every model; evaluate the OpenBHB protocol (brain-age MAE, site balanced
   accuracy), the downstream tasks (repeated stratified CV, intervals, paired tests) and test-retest ICC;
   report references: probes on 4x-pooled voxels (a non-learned image baseline) and ceilings (probes on the
   true latents and on the measured descriptors).
   Anatomy recovery: cross-validated ridge R^2 from each model's features to the downstream subjects' true
   regional anatomy and latent factors, and the effective rank (RankMe) of the features.
4. Write ``OUT/report.html``, ``OUT/results.csv``, ``OUT/summary.md`` (verdict and headline table) and
   ``OUT/demo.json``; print the table.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anatlearn.demo.summary import REFERENCE, by_method, claims, demo_summary_markdown
from anatlearn.errors import ConfigError
from anatlearn.io import atomic_write_text

METHODS = ("anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age")


@dataclass(frozen=True)
class DemoSettings:
    n_pretrain: int = 400
    n_downstream: int = 240
    shape: tuple = (48, 56, 48)
    n_sites: int = 5
    width: float = 0.25
    # The study's first budget (docs/study.md): the demo is the study's seed 0 at 10 epochs (its measured
    # time, and why not 30 epochs: README, "Measured on world v2").
    epochs: int = 10
    batch_size: int = 16
    lr: float = 5e-4
    augment: tuple = ("crop", "noise")
    n_splits: int = 5
    n_repeats: int = 5
    n_boot: int = 1000


FULL = DemoSettings()
QUICK = DemoSettings(n_pretrain=40, n_downstream=32, shape=(32, 40, 32), n_sites=4, width=0.125, epochs=1,
                     batch_size=8, n_splits=2, n_repeats=1, n_boot=50)


def _log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _truth_features(root: Path, participants: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Ceilings: probes on the true latent factors and on the measured ROI descriptors (CT, GMV, SA)."""
    from anatlearn.data import open_dataset
    from anatlearn.evaluate import make_feature_table, truth_targets

    lat = pd.read_csv(root / "truth" / "latents.tsv", sep="\t", dtype={"participant_id": str})
    cols = list(truth_targets(root)["latents"].columns) + ["severity"]  # every latent factor family
    ds = open_dataset(root)
    desc = ds.descriptors(("CT", "GMV", "SA"))
    ids = ds.participants["participant_id"].astype(str).tolist()
    return {"ceiling: true latents": make_feature_table(lat[cols].to_numpy(np.float32), lat["participant_id"]),
            "ceiling: measured descriptors": make_feature_table(np.log(desc.reshape(len(desc), -1)), ids)}


VOXELS = "reference: pooled voxels"


def _pooled_voxels(dataset, factor: int = 4):
    """A non-learned image baseline: each volume average-pooled by ``factor`` (4 mm-like blocks at the demo's
    grid) and flattened; a linear probe on it shows how much of a task is linearly visible in the images."""
    from anatlearn.evaluate import make_feature_table

    rows = [torch.nn.functional.avg_pool3d(torch.from_numpy(np.ascontiguousarray(dataset.volume(i)))[None, None],
                                           factor, ceil_mode=True).flatten().numpy() for i in range(len(dataset))]
    return make_feature_table(np.stack(rows).astype(np.float32), dataset.participants["participant_id"].astype(str))


def run_demo(out, quick: bool = False, seed: int = 0, methods=METHODS, settings: DemoSettings | None = None,
             epochs: int | None = None) -> dict:
    """Run the whole demo into ``out``; returns a summary dict (also written to ``out/demo.json``).
    ``epochs`` overrides the pretraining epochs of the chosen settings (time scales with it)."""
    from anatlearn.data import open_dataset
    from anatlearn.synthetic import generate_cohort
    from anatlearn.embed import AnatEncoder
    from anatlearn.evaluate import evaluate_openbhb, evaluate_tasks, load_tasks, read_participants
    from anatlearn.evaluate.icc import evaluate_icc
    from anatlearn.models import build_model, default_model_config, save_checkpoint
    from anatlearn.provenance import provenance
    from anatlearn.report import build_report
    from anatlearn.pretrain import pretrain
    from anatlearn.pretrain.config import TrainConfig

    s = settings or (QUICK if quick else FULL)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"`epochs` must be at least 1, got {epochs}")
        s = dataclasses.replace(s, epochs=epochs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    # 1. cohorts (one world: same seed, shape and sites)
    t = time.perf_counter()
    data = out / "data"
    common = dict(shape=s.shape, seed=seed, n_sites=s.n_sites, overwrite=True)
    healthy = generate_cohort(data / "healthy", s.n_pretrain, held_out_sites=1, **common)
    down = generate_cohort(data / "downstream", s.n_downstream, diseases=("AD-like", "SCZ-like"), **common)
    retest = generate_cohort(data / "downstream-retest", s.n_downstream, diseases=("AD-like", "SCZ-like"),
                             noise_seed=1, **common)
    timings["generate"] = time.perf_counter() - t
    _log(f"cohorts: {s.n_pretrain} healthy, {s.n_downstream} downstream (+ retest) at {s.shape} "
         f"in {timings['generate']:.0f} s")

    # 2. pretraining: same budget, seed and augmentations for every method
    runs: dict[str, Path] = {}
    for method in methods:
        t = time.perf_counter()
        cfg = TrainConfig(data=str(healthy), out=str(out / "runs" / method), method=method, width=s.width,
                          epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=seed,
                          augment=list(s.augment) if method != "l1-age" else [], num_workers=1, progress=False,
                          channels_last=True)
        runs[method] = pretrain(cfg, overwrite=True)
        timings[f"pretrain {method}"] = time.perf_counter() - t
        _log(f"pretrained {method} in {timings[f'pretrain {method}']:.0f} s")
    torch.manual_seed(seed)
    rand = build_model(default_model_config("resnet18", s.width))
    rand_path = out / "runs" / REFERENCE / "model.pt"
    save_checkpoint(rand_path, {"format": "anatlearn", "format_version": 1, "model": rand.state_dict(),
                                "model_config": rand.model_config, "seed": seed, "provenance": provenance(seed)})
    weights = {m: p / "checkpoints" / "last.pt" for m, p in runs.items()} | {REFERENCE: rand_path}

    # 3. embeddings
    t = time.perf_counter()
    cohorts = {"healthy": open_dataset(healthy), "downstream": open_dataset(down), "retest": open_dataset(retest)}
    feats: dict[str, dict[str, pd.DataFrame]] = {c: {} for c in cohorts}
    for name, w in weights.items():
        # --quick: eager, not TorchScript. Tracing, freezing and optimising each of the six encoders costs more
        # than it saves on ~100 small volumes (the same features within ~1e-6: docs/evaluation.md).
        enc = AnatEncoder(w, batch_size=16, jit=not quick)
        for cohort, ds in cohorts.items():
            feats[cohort][name] = enc.transform(ds)
    timings["embed"] = time.perf_counter() - t
    _log(f"embedded {len(cohorts)} cohorts with {len(weights)} models in {timings['embed']:.0f} s")

    # 4. evaluation
    t = time.perf_counter()
    res_dir = out / "results"
    p_healthy, p_down = read_participants(healthy), read_participants(down)
    references = {c: _pooled_voxels(ds) for c, ds in cohorts.items() if c != "retest"}
    obhb = evaluate_openbhb(feats["healthy"] | {VOXELS: references["healthy"]}, p_healthy, seed=seed, n_boot=s.n_boot)
    obhb.write(res_dir / "openbhb")
    task_feats = feats["downstream"] | {VOXELS: references["downstream"]} | _truth_features(down, p_down)
    tasks = evaluate_tasks(task_feats, p_down, load_tasks("synthetic"), n_splits=s.n_splits, n_repeats=s.n_repeats,
                           seed=seed)
    tasks.write(res_dir / "tasks")
    icc_results = evaluate_icc(feats["downstream"], {m: feats["retest"][m] for m in feats["downstream"]})
    icc_results.provenance = provenance(seed, {"kind": "agreement", "cohort": str(down)})  # retest: its re-scan
    icc_results.write(res_dir / "icc")
    anatomy = _anatomy_recovery(down, task_feats, s, seed)
    anatomy.write(res_dir / "anatomy")
    timings["evaluate"] = time.perf_counter() - t
    _log(f"evaluated in {timings['evaluate']:.0f} s")

    table = pd.concat([anatomy.table, obhb.table, tasks.table, icc_results.table], ignore_index=True)
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    note = (f"One pretraining run per method (seed {seed}, {s.epochs} epochs, width {s.width}, {s.n_pretrain} "
            f"healthy subjects): one seed cannot rank methods whose differences are within run-to-run noise; "
            f"the multi-seed study (docs/study.md) does.")
    summary_md = demo_summary_markdown(table, tasks.paired, note, [anatomy, obhb, tasks, icc_results])
    atomic_write_text(out / "summary.md", summary_md)
    t = time.perf_counter()  # brain age, ComBat and a region map of the first method (anatlearn.clinical)
    from anatlearn.clinical.demo_steps import run_clinical_demo

    first = next(iter(weights))
    clinical = run_clinical_demo(out / "clinical", weights[first], down, feats["healthy"][first],
                                 feats["downstream"][first], p_healthy, p_down, seed=seed, quick=quick)
    timings["clinical"] = time.perf_counter() - t
    t = time.perf_counter()
    results_dirs = [res_dir / name for name in ("anatomy", "tasks", "openbhb", "icc")]
    report = build_report([*results_dirs, clinical, *runs.values()],
                          out / "report.html", features={m: f for m, f in feats["downstream"].items()},
                          participants=p_down, title="anatlearn demo: synthetic benchmark", seed=seed,
                          note=note)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    summary = {"settings": dataclasses.asdict(s), "quick": quick, "seed": seed, "methods": list(methods),
               "timings_s": {k: round(v, 1) for k, v in timings.items()}, "claims": claims(tasks, obhb),
               "anatomy_recovery": by_method(anatomy.table), "summary": str(out / "summary.md"),
               "report": str(report), "provenance": provenance(seed, dataclasses.asdict(s))}
    atomic_write_text(out / "demo.json", json.dumps(summary, indent=1, default=str))
    return summary


def _anatomy_recovery(cohort: Path, features: dict[str, pd.DataFrame], s: DemoSettings, seed: int):
    """Anatomy recovery (anatlearn.evaluate.anatomy_recovery) of every model, the pooled voxels and the
    ceilings on the downstream subjects: cross-validated ridge R^2 to their true log regional GMV, CT, SA and
    latent factors (truth/), and the RankMe effective rank of each feature table."""
    from anatlearn.evaluate import truth_targets
    from anatlearn.evaluate.anatomy_recovery import evaluate_anatomy

    return evaluate_anatomy(features, truth_targets(cohort), n_splits=s.n_splits, seed=seed)
