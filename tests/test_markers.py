"""The slow list of tests/conftest.py names tests that exist: a renamed test would otherwise silently join
`make test-fast` (the marker is the only thing that keeps it out)."""

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _slow():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_root_conftest", TESTS / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SLOW


@pytest.mark.parametrize("entry", _slow())
def test_slow_entry_names_an_existing_test(entry):
    path, _, name = entry.partition("::")
    source = (TESTS / path).read_text()
    assert re.search(r"^def test_" if not name else rf"^def {re.escape(name)}\(", source, re.M), entry


def test_the_marker_is_registered_and_applied(pytestconfig, request):
    assert any(m.startswith("slow:") for m in pytestconfig.getini("markers"))
    assert request.node.get_closest_marker("slow") is None  # this cheap test stays in make test-fast
