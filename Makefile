# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs dgl-hod, runs the main job
#   make test   -- creates .venv, installs dgl-hod with its test extras, runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DGLBACKEND := pytorch

.PHONY: demo test lint doctest wheel-test ci bench install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m dgl_hod.cli demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# docstring examples of the package (`>>>` lines)
doctest: $(VENV)/.installed
	$(PY) -m pytest -q --doctest-modules dgl_hod -p no:cacheprovider

# build the wheel, install it without dependencies into a folder, run `dgl-hod eval gine-zinc` outside the checkout
# (also part of `make test`)
wheel-test: $(VENV)/.installed
	$(PY) -m pytest -q tests/test_install.py -p no:cacheprovider

# what .ci/run runs: lint (ruff, ruff format --check, mypy), the docstring examples, the tests (wheel test included)
ci: lint doctest test

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_jets.py

clean:
	rm -rf $(VENV) build dist *.egg-info
