"""The pre-registered grid (docs/study.md): sizes, variants, settings round trip."""

import json

import pytest

from anatlearn.errors import ConfigError
from anatlearn.study.grid import (FULL, MAIN, QUICK, RANDOM_INIT, build_cells, grid_settings, n_units,
                                  settings_from_dict, stages, training_epochs)


def test_full_grid_matches_the_protocol():
    cells = build_cells(FULL)
    names = {c.name for c in cells}
    # 6 main configurations incl. random init, the control, 13 ablation variants; 3 seeds each
    assert {"anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age", RANDOM_INIT, "gmv-regression"} <= names
    assert len(names) == 7 + 13
    assert len(cells) == 3 * 20
    assert all(sorted(c.seed for c in cells if c.name == n) == [0, 1, 2] for n in names)
    # main methods and control at 10/30/100, ablations at 10/30, random init once
    assert training_epochs(cells) == 6 * 3 * 100 + 13 * 3 * 30
    assert n_units(cells) == 6 * 3 * 3 + 13 * 3 * 2 + 3
    assert cells[0].method == RANDOM_INIT  # first: it times one evaluation
    assert len(build_cells(MAIN)) == 3 * 7


def test_stages_put_the_control_and_main_grid_first_then_ablations_then_the_long_budget():
    cells = build_cells(FULL)
    main10, main30, abl10, abl30, main100 = stages(cells, selection_budget=30)
    # every trained cell once per budget of its own, cut at that budget; random init is not staged
    assert len(main10) == len(main30) == len(main100) == 6 * 3 and len(abl10) == len(abl30) == 13 * 3
    assert all(c.budgets == (10,) for c in main10 + abl10) and all(c.budgets == (10, 30) for c in main30 + abl30)
    assert all(c.budgets == (10, 30, 100) and c.variant == "base" for c in main100)
    assert all(c.group == "ablation" for c in abl10 + abl30) and not any(c.group == "ablation" for c in main30)
    # each (cell, budget) evaluation belongs to exactly one stage: the stage whose budget is its own
    assert sorted((c.id, max(c.budgets)) for st in stages(cells) for c in st) == \
        sorted((c.id, b) for c in cells if c.method != RANDOM_INIT for b in c.budgets)
    ids = [c.id for c in main30]
    assert ids[:3] == ["gmv-regression/seed-0", "gmv-regression/seed-1", "gmv-regression/seed-2"]
    assert ids[3:8] == [f"{m}/seed-0" for m in ("anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age")]
    assert [c.seed for c in main30[3:]] == [0] * 5 + [1] * 5 + [2] * 5


def test_variants_change_one_factor_of_the_base():
    cells = {c.id: c for c in build_cells(FULL)}
    base = cells["anatcl-global/seed-0"].overrides
    assert base == {"augment": ["crop", "noise"]}
    assert cells["anatcl-global+no-aug/seed-0"].overrides == {"augment": []}
    assert cells["anatcl-local+kernel/seed-1"].overrides == {**base, "weight_map": "kernel"}
    assert cells["anatcl-global+lambda-2/seed-2"].overrides == {**base, "lambda_anat": 2.0}
    assert cells["yaware+no-aug/seed-0"].overrides == {"augment": []}
    assert cells["l1-age/seed-0"].overrides == {"augment": []}
    assert cells["gmv-regression/seed-0"].overrides == {"augment": []}
    assert not any(c.startswith("simclr+") for c in cells)  # SimCLR needs augmentation: no ablation


def test_settings_round_trip_through_json():
    for s in (FULL, QUICK):
        assert settings_from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_unknown_grid_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown --grid 'huge'"):
        grid_settings("huge")


def test_views_follow_up_splits_the_augmentation_and_leaves_the_full_grid_alone():
    from anatlearn.study.grid import VIEWS

    cells = {c.id: c for c in build_cells(VIEWS)}
    assert sorted({c.name for c in cells.values()}) == [
        "anatcl-global+crop-only", "anatcl-global+noise-only", RANDOM_INIT, "yaware+crop-only", "yaware+noise-only"]
    assert cells["anatcl-global+crop-only/seed-1"].overrides == {"augment": ["crop"]}
    assert cells["yaware+noise-only/seed-2"].overrides == {"augment": ["noise"]}
    assert training_epochs(list(cells.values())) == 4 * 3 * 30 and n_units(list(cells.values())) == 4 * 3 * 2 + 3
    # same cohorts and training settings as the full grid: only the grid's membership differs
    for field in ("n_pretrain", "n_validation", "n_downstream", "shape", "n_sites", "world_seed", "width",
                  "batch_size", "lr", "augment", "seeds", "n_splits", "n_repeats", "n_boot"):
        assert getattr(VIEWS, field) == getattr(FULL, field)
    # the selected-variant extension needs a budget beyond the ablations': none here
    assert max(VIEWS.budgets) in VIEWS.ablation_budgets
    assert not any("only" in c.variant for c in build_cells(FULL))


def test_replication_grid_is_the_selected_configurations_on_new_seeds():
    from anatlearn.study.grid import REPLICATION, VARIANTS, base_overrides

    cells = build_cells(REPLICATION)
    assert sorted({c.name for c in cells}) == ["anatcl-global", "anatcl-local", RANDOM_INIT, "yaware"]
    assert sorted({c.seed for c in cells}) == [3, 4, 5]  # run 2 used 0, 1, 2
    trained = [c for c in cells if c.method != RANDOM_INIT]
    # each method's base here is run 2's selected "+no-aug" configuration: the same training overrides
    for c in trained:
        assert c.overrides == {**base_overrides(c.method, FULL), **VARIANTS["no-aug"]} == {"augment": []}
        assert c.budgets == (30, 100)
    assert training_epochs(cells) == 9 * 100 and n_units(cells) == 9 * 2 + 3
    for field in ("n_pretrain", "n_validation", "n_downstream", "shape", "n_sites", "world_seed", "width",
                  "batch_size", "lr", "n_splits", "n_repeats", "n_boot", "selection_budget"):
        assert getattr(REPLICATION, field) == getattr(FULL, field)
    # no ablations: the selection rule has nothing to extend; the 30-epoch stage lands before the 100-epoch one
    assert [max(st[0].budgets) for st in stages(trained, REPLICATION.selection_budget)] == [30, 100]
    assert grid_settings("replication") is REPLICATION


def test_run3_grid_is_the_preregistered_one():
    """docs/study.md Part 6: released views, AnatCL / y-Aware / the two regression objectives, seeds 6-8,
    budgets 30 and 100, random init; everything else as in run 2."""
    from anatlearn.study.grid import RUN3, base_overrides

    cells = build_cells(RUN3)
    assert sorted({c.name for c in cells}) == ["anatcl-global", "anatcl-local", "anatcl-regression",
                                               "descriptor-regression", RANDOM_INIT, "yaware"]
    assert sorted({c.seed for c in cells}) == [6, 7, 8]
    trained = [c for c in cells if c.method != RANDOM_INIT]
    assert all(c.budgets == (30, 100) and c.overrides["augment"] == [] for c in trained)
    assert {c.overrides.get("lambda_reg") for c in trained if c.method == "anatcl-regression"} == {RUN3.lambda_reg}
    assert all("lambda_reg" not in c.overrides for c in trained if c.method != "anatcl-regression")
    assert base_overrides("anatcl-regression", RUN3) == {"augment": [], "lambda_reg": RUN3.lambda_reg}
    assert training_epochs(cells) == 15 * 100 and n_units(cells) == 15 * 2 + 3
    for field in ("n_pretrain", "n_validation", "n_downstream", "shape", "n_sites", "world_seed", "width",
                  "batch_size", "lr", "n_splits", "n_repeats", "n_boot", "selection_budget"):
        assert getattr(RUN3, field) == getattr(FULL, field)
    assert not RUN3.control and not RUN3.ablations
    # run 3's lambda_reg is the default of --lambda-reg, both set by the selection of Part 6
    from anatlearn.losses.anatcl_regression import LAMBDA_REG
    from anatlearn.pretrain.config import TrainConfig

    assert RUN3.lambda_reg == LAMBDA_REG == TrainConfig().lambda_reg
    assert grid_settings("run3") is RUN3


def test_run3_selection_grid_is_lambda_reg_on_seed_9_at_30_epochs():
    from anatlearn.study.grid import LAMBDA_REG_GRID, RUN3, RUN3_SELECT

    cells = build_cells(RUN3_SELECT)
    trained = [c for c in cells if c.method != RANDOM_INIT]
    assert LAMBDA_REG_GRID == (0.1, 0.3, 1.0, 3.0)
    assert sorted(c.overrides["lambda_reg"] for c in trained) == [0.1, 0.3, 1.0, 3.0]
    assert {c.name for c in trained} == {f"anatcl-regression+lambda-reg-{v}" for v in ("0.1", "0.3", "1", "3")}
    assert all(c.seed == 9 and c.budgets == (30,) and c.overrides["augment"] == [] for c in cells if c in trained)
    assert not set(RUN3_SELECT.seeds) & set(RUN3.seeds)  # seeds outside run 3's
    assert RUN3_SELECT.selection_budget == 30 and training_epochs(cells) == 4 * 30 and n_units(cells) == 5
    # the selection rule extends nothing: no budget beyond 30
    assert max(RUN3_SELECT.budgets) in RUN3_SELECT.ablation_budgets
    for field in ("n_pretrain", "n_validation", "n_downstream", "shape", "world_seed", "width", "augment"):
        assert getattr(RUN3_SELECT, field) == getattr(RUN3, field)
    assert RUN3_SELECT.lambda_reg == 1.0  # the default fixed in advance, whatever RUN3's becomes


def test_a_study_started_before_lambda_reg_existed_still_matches_its_grid(tmp_path):
    """study.json of runs 1-2, the views and the replication have no lambda_reg: read back it takes the
    default, so they continue; another lambda_reg is refused."""
    import dataclasses

    from anatlearn.study.grid import REPLICATION
    from anatlearn.study.record import check_settings

    old = REPLICATION.to_dict()
    del old["lambda_reg"]
    (tmp_path / "study.json").write_text(json.dumps({"grid": "replication", "settings": old, "invocations": []}))
    assert check_settings(tmp_path, REPLICATION, "replication")["grid"] == "replication"
    with pytest.raises(ConfigError, match=r"lambda_reg: \S+ in the study, 0.3 now"):
        check_settings(tmp_path, dataclasses.replace(REPLICATION, lambda_reg=0.3), "replication")
