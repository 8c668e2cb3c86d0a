# deepesi: the two commands of the README's quick start, and a few helpers.
# Every target installs what is missing itself (a venv in .venv, torch pinned to the CPU wheel).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.deepesi-installed

.PHONY: demo test lint install template clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]" "$(TORCH_PIN)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/deepesi demo -o out/demo --overwrite

test: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks examples

template: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[build]" "$(TORCH_PIN)"
	$(BIN)/python scripts/build_template.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
