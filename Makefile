# The two commands of the README:
#   make build   create the environment, install everything, find the raw data, run `dbt build`
#   make test    create the environment, install everything, run every test (pytest + dbt)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: build test bench lint docs clean

build: $(STAMP)
	$(PY) -m retail_segments build

test: lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m retail_segments bench

lint: $(STAMP)
	$(VENV)/bin/ruff check retail_segments python_models tests
	$(VENV)/bin/ruff format --check retail_segments python_models tests

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf target logs dbt_packages
