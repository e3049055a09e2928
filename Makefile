# anatlearn — set-up contract: `make demo` runs the main job, `make test` installs and runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out
STUDY_OUT ?= study-out
# two cells at once, one thread each: 1.25x one 2-thread worker on the 2-core CPU (docs/study.md, "Run 2")
STUDY_ARGS ?= --grid full --workers 2

.PHONY: install test test-fast demo study bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch FIRST and pinned: resolves to the local CPU wheel; anything unpinned would pull CUDA.
	$(PIP) install -q torch==2.13.0
	# the ranges of pyproject.toml, resolved to the exact versions of constraints.txt (the lock)
	$(PIP) install -q -c constraints.txt -e ".[test,prep,hub]"
	touch $(STAMP)

install: $(STAMP)

# Two pytest-xdist workers, one torch/BLAS thread each (the 2-core machine); --dist loadgroup keeps each test
# module, and all of tests/prep, on one worker so their shared fixtures are built once (tests/conftest.py).
PYTEST_XDIST ?= -n 2 --dist loadgroup
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(PYTEST_XDIST) tests

# The inner loop: everything but the tests marked slow (tests/conftest.py), a few minutes.
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(PYTEST_XDIST) -m "not slow" tests

demo: $(STAMP)
	$(VENV)/bin/anatlearn demo --out $(DEMO_OUT)

# The pre-registered study (docs/study.md); resumable: re-run to continue. e.g. STUDY_ARGS="--device cuda --workers 8"
study: $(STAMP)
	$(VENV)/bin/anatlearn study --out $(STUDY_OUT) $(STUDY_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --out benchmarks/RESULTS.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
