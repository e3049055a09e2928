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


def test_stages_train_budget_by_budget_control_first_then_seed_rounds():
    cells = build_cells(FULL)
    s10, s30, s100 = stages(cells)
    # every trained cell once per budget of its own, cut at that budget; random init is not staged
    assert len(s10) == len(s30) == 6 * 3 + 13 * 3 and len(s100) == 6 * 3
    assert all(c.budgets == (10,) for c in s10) and all(c.budgets == (10, 30) for c in s30)
    assert all(c.budgets == (10, 30, 100) and c.variant == "base" for c in s100)
    assert sum(n_units(st) for st in (s10,)) + sum(len(c.budgets) - 1 for c in s30) \
        + sum(len(c.budgets) - 2 for c in s100) == n_units(cells) - 3
    ids = [c.id for c in s30]
    assert ids[:3] == ["gmv-regression/seed-0", "gmv-regression/seed-1", "gmv-regression/seed-2"]
    assert ids[3:8] == [f"{m}/seed-0" for m in ("anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age")]
    assert [c.seed for c in s30[3:18]] == [0] * 5 + [1] * 5 + [2] * 5
    assert all(c.group == "ablation" for c in s30[18:])


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
