"""Shared fixtures: small generated cohorts (created once per test session)."""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

TINY_SHAPE = (32, 40, 32)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """48 healthy subjects, 4 sites (one held out), 32x40x32 volumes."""
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "healthy", 48, TINY_SHAPE, seed=1, n_sites=4)


@pytest.fixture(scope="session")
def tiny_downstream(tmp_path_factory):
    """40 subjects of the same world: AD-like and SCZ-like patients with matched controls."""
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "downstream", 40, TINY_SHAPE, seed=1, n_sites=4,
                           diseases=("AD-like", "SCZ-like"))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module's tests: identical float reductions in every run it compares."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
