"""When a balanced accuracy is *below* chance, and what to say about it.

A probe that scores below chance anticorrelates with the labels. No real signal does that; it is what a
cross-validated probe can do on features that hold no information about the labels (each held-out subject
is missing from its own class's training data, and where features were centred per class on all subjects,
as ComBat does per site, the training subjects of its class sit on the far side of the class mean), and
more so with few subjects per class. A reader seeing "0.610 -> 0.078 (chance 0.200)" should not read it as
a reversed site effect, so every such result carries :func:`note`.

The rule (:func:`below_chance`): a balanced accuracy is below chance when its 95 % interval lies wholly
below chance; without an interval, when it is below chance by more than :data:`MARGIN_SD` standard
deviations of the balanced accuracy of random guessing over the same subjects (:func:`guessing_sd`).
"""

from __future__ import annotations

import math
from typing import Sequence

MARGIN_SD = 2.0


def note(what: str = "the labels") -> str:
    """The plain-words note a below-chance result carries (``what``: what the probe predicts)."""
    return (f"below chance: the probe anticorrelates with {what}, which no real effect does; read it as no "
            f"information about {what} detected (cross-validated probes on uninformative features can fall below "
            f"chance, the more so with few subjects per class), not as a reversed effect")


def guessing_sd(class_counts: Sequence[float]) -> float:
    """Standard deviation of the balanced accuracy of uniform random guessing over k classes of the given sizes.

    Each class's recall is Binomial(n_c, 1/k) / n_c, variance (1/k)(1 - 1/k) / n_c, and balanced accuracy
    is the mean of the k independent recalls: Var = (1/k^2) sum_c (1/k)(1 - 1/k) / n_c.
    """
    counts = [float(c) for c in class_counts if c > 0]
    k = len(counts)
    if k < 2:
        return math.nan
    p = 1.0 / k
    return math.sqrt(sum(p * (1 - p) / c for c in counts)) / k


def below_chance(mean: float, chance: float, ci_high: float | None = None,
                 class_counts: Sequence[float] | None = None) -> bool:
    """True when a balanced accuracy ``mean`` is below ``chance`` by more than its interval (``ci_high`` below
    chance) or, without an interval, by more than MARGIN_SD x :func:`guessing_sd` of ``class_counts``."""
    if mean is None or chance is None or not (math.isfinite(mean) and math.isfinite(chance)):
        return False
    if ci_high is not None and math.isfinite(ci_high):
        return ci_high < chance
    if class_counts is None or len(class_counts) == 0:
        return False
    sd = guessing_sd(class_counts)
    return math.isfinite(sd) and mean < chance - MARGIN_SD * sd


def margin(class_counts: Sequence[float]) -> float:
    """How far below chance a balanced accuracy without interval must be to count as below chance."""
    return MARGIN_SD * guessing_sd(class_counts)


__all__ = ["MARGIN_SD", "below_chance", "guessing_sd", "margin", "note"]
