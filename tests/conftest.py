"""Shared fixtures: small generated cohorts (created once per test session)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

TESTS = Path(__file__).resolve().parent
# Marked `slow` here, not in their files (several helpers own them): `make test-fast` (-m "not slow") leaves them
# out; `make test` and CI run them. Each takes a minute or more on the 2-core machine (docs/results.md).
SLOW = ("prep/test_real_head.py", "test_wheel.py", "demo/test_demo.py")
# Tests that share costly session fixtures run on one pytest-xdist worker (`--dist loadgroup`), so the fixture
# is built once: every module of tests/prep shares the prepared phantoms and the real head. Every other
# module is a group of its own: its module-scoped fixtures (trained runs, embedded tables) are built once too.
SHARED = {"prep/": "prep"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS).as_posix()
        if rel in SLOW:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("xdist_group") is None:
            group = next((g for prefix, g in SHARED.items() if rel.startswith(prefix)), rel)
            item.add_marker(pytest.mark.xdist_group(group))

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
