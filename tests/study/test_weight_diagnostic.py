"""scripts/study_weight_diagnostic.py: the weighted-InfoNCE target statistics against hand-computed cases."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "study_weight_diagnostic.py"


@pytest.fixture(scope="module")
def diag():
    spec = importlib.util.spec_from_file_location("study_weight_diagnostic", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_targets_of_identity_uniform_and_two_level_weights(diag):
    rng = np.random.default_rng(0)
    # SimCLR: all of the target on the anchor's other view
    assert diag.target_stats(np.eye(20), 4, 5, rng) == pytest.approx((1.0, 1.0))
    # every pair alike: the other view is one of 2B - 1 = 7 equal targets
    own, perp = diag.target_stats(np.ones((20, 20)), 4, 5, rng)
    assert own == pytest.approx(1 / 7) and perp == pytest.approx(7.0)
    # off-diagonal 0.5, diagonal 1 (the shift map of cosines near 0): 1 / (1 + 6 * 0.5) = 1/4 on the other
    # view, and perplexity exp(H) with H = -(1/4 log 1/4 + 6 * 1/8 log 1/8)
    w = np.full((20, 20), 0.5)
    np.fill_diagonal(w, 1.0)
    own, perp = diag.target_stats(w, 4, 5, rng)
    assert own == pytest.approx(0.25)
    assert perp == pytest.approx(np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.125))))
