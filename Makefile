# qatune: two commands on a fresh machine.
#   make run   - install, then run the quickstart study (sweep, fine-tunes, untuned vs fine-tuned, the study's
#                four questions, report in runs/studies/quickstart/), 12-36 minutes on 2 CPU cores
#   make test  - install, lint and type-check (ruff, mypy), run the fast tests, then the bounded selection of
#                tests on real SQuAD (marked slow)
VENV ?= .venv
PY := $(VENV)/bin/python
QATUNE := $(VENV)/bin/qatune
# Real SQuAD, if it is beside the checkout; otherwise qatune falls back to its embedded sample (and says so).
export QATUNE_DATA_DIR ?= $(abspath ../shared/data/squad)

.PHONY: install run own-data lint test test-fast test-slow clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0   # the CPU wheel, before anything can pull a CUDA build
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(QATUNE) run examples/quickstart.yaml

# Fine-tune on your own labelled data (README, Your own labelled data): the documentation example.
own-data: install
	$(QATUNE) data convert examples/own-data/qatune-docs.csv --output runs/own-data/docs.json --overwrite
	$(QATUNE) data split runs/own-data/docs.json --dev 0.2 --by title --seed 0 --output-dir runs/own-data --overwrite
	$(QATUNE) run examples/own-data/study.yaml

test: lint test-fast test-slow

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test-fast: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
