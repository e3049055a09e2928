"""The below-chance rule: the SD of guessing against exact enumeration, and the three ways a value is judged."""

import itertools
import math

import numpy as np
import pytest

from anatlearn.evaluate.chance import below_chance, guessing_sd, margin


@pytest.mark.parametrize("counts", [(2, 3), (1, 2, 2), (3, 3)])
def test_guessing_sd_matches_exact_enumeration(counts):
    """Every equally likely way of guessing k classes for every subject: the exact SD of balanced accuracy."""
    k = len(counts)
    labels = np.repeat(np.arange(k), counts)
    values = [np.mean([np.mean(np.array(g)[labels == c] == c) for c in range(k)])
              for g in itertools.product(range(k), repeat=len(labels))]
    assert guessing_sd(counts) == pytest.approx(float(np.std(values)), rel=1e-12)


def test_below_chance_by_interval_or_by_margin():
    assert below_chance(0.20, 0.5, ci_high=0.45) and not below_chance(0.20, 0.5, ci_high=0.55)
    # without an interval: 2 SD of guessing over 100 subjects in 2 classes = 2 * 0.5 / 10 = 0.1
    assert margin([50, 50]) == pytest.approx(0.1)
    assert below_chance(0.39, 0.5, class_counts=[50, 50]) and not below_chance(0.41, 0.5, class_counts=[50, 50])
    assert not below_chance(0.1, 0.5)  # no interval and no n: nothing to judge by
    assert not below_chance(math.nan, 0.5, class_counts=[50, 50])
