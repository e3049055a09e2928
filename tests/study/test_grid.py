"""The pre-registered grid (docs/study.md): sizes, variants, settings round trip."""

import json

import pytest

from anatlearn.errors import ConfigError
from anatlearn.study.grid import (FULL, MAIN, QUICK, RANDOM_INIT, build_cells, grid_settings, n_units,
                                  settings_from_dict, training_epochs)


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
