# Everything installs into .venv from the repo's own files; a fresh machine needs only python3.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test check lint bench clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job on the embedded synthetic sample.
demo: venv
	$(PY) scripts/demo.py --workspace $(DEMO)

test: venv
	$(PY) -m pytest -n 2 --timeout 900 -q

lint: venv
	$(VENV)/bin/ruff check src tests bench training data evaluation scripts

check: lint test

bench: venv
	$(PY) bench/run_all.py

clean-demo:
	rm -rf $(DEMO)
