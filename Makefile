# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and (re)install when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medtransfer-installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint docs install samples benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,seg]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medtransfer demo

lint: $(STAMP)
	$(BIN)/ruff check medtransfer tests benchmarks data_samples docs/api
	$(BIN)/ruff format --check medtransfer tests benchmarks data_samples docs/api
	$(BIN)/lint-imports

test: lint docs
	$(BIN)/python -m pytest -n 2 --durations=15

# The documentation site (mkdocs-material + API reference from the docstrings) into site/
# (git-ignored); --strict turns every broken link or unparsable docstring into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

samples: $(STAMP)
	$(BIN)/python data_samples/make_samples.py

benchmark: $(STAMP)
	$(BIN)/python benchmarks/io_dicom.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
