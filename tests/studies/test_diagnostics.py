"""Diagnostics outside the study's protocol (studies/): exact against hand counts and the real transform."""

import numpy as np
import pytest
import torch

from anatlearn.data.transforms import AUGMENTATIONS
from studies import crop_diagnostic, replication, views


def test_crop_loss_is_exact_for_a_slab_at_the_edge_and_matches_the_real_transform():
    shape = (48, 56, 48)
    crop = AUGMENTATIONS["crop"](shape)
    assert crop.size == (43, 50, 43)
    # one region: the slab x in {0, 1, 2}, away from the y and z edges (always inside the window there)
    template = np.zeros(shape, np.float32)
    template[0:3, 20:30, 20:30] = 1.0
    labels = np.where(template > 0, 0, -1).astype(np.int16)
    r = crop_diagnostic.crop_loss(template, labels, crop.size)
    # 6 starts per x; index i is kept by the starts a <= i: 1, 2, 3 of 6 for i = 0, 1, 2 -> kept 1/3
    assert r["expected"][0] == pytest.approx(2 / 3)
    assert r["worst"][0] == pytest.approx(1.0)  # start 5 drops all three planes
    assert crop_diagnostic.keep_probability(48, 43)[:7].tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1])
    # the transform itself: the slab mass that survives a view, averaged over draws
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(template)[None]
    kept = [float(crop(x, generator=g).sum()) / float(x.sum()) for _ in range(600)]
    assert np.mean(kept) == pytest.approx(1 / 3, abs=0.05)


def test_views_report_pairs_two_studies_by_seed_and_refuses_other_cohorts(tmp_path, capsys):
    import pandas as pd

    metrics = [m for m, _ in views.METRICS]

    def rows(name, values, budget=30):
        return [{"name": name, "seed": s, "budget": budget, **{m: v for m in metrics}} for s, v in enumerate(values)]

    run2 = pd.DataFrame(rows("random-init", [0.70, 0.71, 0.69], 0) + rows("anatcl-global", [0.60, 0.61, 0.62])
                        + rows("anatcl-global+no-aug", [0.74, 0.73, 0.75]))
    follow_up = pd.DataFrame(rows("random-init", [0.70, 0.71, 0.69], 0) + rows("anatcl-global+crop-only", [0.61, 0.60, 0.63])
                              + rows("anatcl-global+noise-only", [0.74, 0.74, 0.74]))
    run2.to_csv(tmp_path / "run2.tsv", sep="\t", index=False)
    follow_up.to_csv(tmp_path / "follow_up.tsv", sep="\t", index=False)
    views.main([str(tmp_path / "run2.tsv"), str(tmp_path / "follow_up.tsv")])
    report = capsys.readouterr().out
    assert "largest metric difference between the two studies: 0.00e+00" in report
    assert "| anatcl-global+noise-only | 3 | 0.740 ± 0.000 |" in report
    # crop-only minus no-aug per seed: -0.13, -0.13, -0.12 -> called; noise-only minus no-aug: 0, +0.01, -0.01
    assert "| anatcl-global+crop-only | anatcl-global+no-aug | anat_r2_GMV | 0.613 | 0.740 | -0.127 |" in report
    line = next(x for x in report.splitlines()
                if x.startswith("| anatcl-global+noise-only | anatcl-global+no-aug | anat_r2_GMV |"))
    assert line.endswith("| no |")
    # another cohort (random init moved): refused, not paired
    follow_up.loc[follow_up["name"] == "random-init", "anat_r2_GMV"] += 0.05
    follow_up.to_csv(tmp_path / "follow_up.tsv", sep="\t", index=False)
    with pytest.raises(SystemExit, match="not the same cohorts"):
        views.main([str(tmp_path / "run2.tsv"), str(tmp_path / "follow_up.tsv")])


def test_replication_report_reads_the_primary_rule_and_refuses_unpairable_studies(tmp_path, capsys):
    import json

    import pandas as pd

    from anatlearn.study.grid import FULL, REPLICATION

    metrics = list(replication.PAIR_METRICS)

    def study(path, settings, rows):
        (path / "results").mkdir(parents=True)
        (path / "study.json").write_text(json.dumps({"settings": settings.to_dict()}))
        pd.DataFrame(rows).to_csv(path / "results" / "units.tsv", sep="\t", index=False)
        return path

    def rows(name, seeds, ct, budget=100):
        return [{"name": name, "seed": s, "budget": budget, **{m: 0.5 for m in metrics}, "anat_r2_CT": v}
                for s, v in zip(seeds, ct)]

    run2 = study(tmp_path / "run2", FULL, rows("anatcl-global+no-aug", [0, 1, 2], [0.38, 0.39, 0.37])
                 + rows("yaware+no-aug", [0, 1, 2], [0.36, 0.37, 0.36]) + rows("anatcl-global", [0, 1, 2], [0.2] * 3))
    # new seeds: anatcl-global above y-Aware on every seed (+0.02, +0.025, +0.02: p < 0.01); anatcl-local mixed
    rep_rows = (rows("anatcl-global", [3, 4, 5], [0.40, 0.40, 0.39]) + rows("yaware", [3, 4, 5], [0.38, 0.375, 0.37])
                + rows("anatcl-local", [3, 4, 5], [0.39, 0.36, 0.38]) + rows("random-init", [3, 4, 5], [0.29] * 3, 0))
    rep = study(tmp_path / "rep", REPLICATION, rep_rows)
    replication.main([str(run2), str(rep)])
    out = capsys.readouterr().out
    assert "| anatcl-global | 0.397 | 0.375 | +0.022 |" in out and "| 3 | replicated |" in out
    assert next(x for x in out.splitlines() if x.startswith("| anatcl-local | 0.377 |")).endswith("| not replicated |")
    # pooled: run 2's +no-aug cells join the new seeds as the same configuration (6 seeds, base cells left out)
    pooled = out.split("pooled")[1]
    assert "| anatcl-global | yaware | anat_r2_CT | 0.388 | 0.369 | +0.019 |" in pooled and "| 6 |" in pooled
    # the same seeds again, or another world: refused
    with pytest.raises(SystemExit, match="overlap"):
        replication.main([str(run2), str(study(tmp_path / "same", FULL.__class__(**{**REPLICATION.__dict__, "seeds": (0, 1, 2)}),
                                              rep_rows))])
    with pytest.raises(SystemExit, match="world_seed"):
        replication.main([str(run2), str(study(tmp_path / "other", FULL.__class__(**{**REPLICATION.__dict__, "world_seed": 1}),
                                              rep_rows))])
