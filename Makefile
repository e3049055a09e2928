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

.PHONY: install test demo study bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch FIRST and pinned: resolves to the local CPU wheel; anything unpinned would pull CUDA.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test,prep]"
	# The released AnatCL package: an independent reference for strict checkpoint loading (needs only torch).
	$(PIP) install -q --no-deps anatcl==0.0.3
	# prep's brain extraction (weights inside the wheel); --no-deps: it declares torch and a GUI toolkit.
	$(PIP) install -q --no-deps deepbet==1.0.2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(VENV)/bin/anatlearn demo --out $(DEMO_OUT)

# The pre-registered study (docs/study.md); resumable: re-run to continue. e.g. STUDY_ARGS="--device cuda --workers 8"
study: $(STAMP)
	$(VENV)/bin/anatlearn study --out $(STUDY_OUT) $(STUDY_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --out benchmarks/RESULTS.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
