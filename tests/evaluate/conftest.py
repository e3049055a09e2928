"""Generated feature and label tables with known structure for the evaluation tests."""

import numpy as np
import pandas as pd
import pytest


def _ids(n):
    return pd.Index([f"s{i:04d}" for i in range(n)], name="participant_id")


@pytest.fixture
def openbhb_like():
    """600 subjects, 5 sites (site4 held out = external_test); ages 6-88."""
    rng = np.random.default_rng(0)
    n = 600
    site = rng.choice([f"site{i}" for i in range(5)], n)
    split = np.where(site == "site4", "external_test", np.where(rng.random(n) < 0.25, "internal_test", "train"))
    participants = pd.DataFrame({"age": rng.uniform(6, 88, n), "site": site, "split": split}, index=_ids(n))
    participants.attrs["source"] = "participants.tsv"
    return participants


@pytest.fixture
def diagnosis_cohort():
    """300 subjects: diagnosis AD/CN/MCI (AD and CN 120 each), a clinical score, 3 sites."""
    rng = np.random.default_rng(1)
    n = 300
    dx = np.array(["AD"] * 120 + ["CN"] * 120 + ["MCI"] * 60)
    score = 28 - 6 * (dx == "AD") - 2 * (dx == "MCI") + rng.normal(0, 1, n)
    participants = pd.DataFrame({"diagnosis": dx, "mmse": score, "site": rng.choice(["a", "b", "c"], n),
                                 "code": np.where(dx == "AD", 1.0, 2.0)}, index=_ids(n))
    participants.attrs["source"] = "labels.tsv"
    return participants
