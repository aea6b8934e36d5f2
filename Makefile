# qatune: two commands on a fresh machine.
#   make run   - install, fine-tune the default model on a slice of SQuAD, answer the study's four questions
#   make test  - install, run the fast tests, then the bounded selection of tests on real SQuAD (marked slow)
VENV ?= .venv
PY := $(VENV)/bin/python
QATUNE := $(VENV)/bin/qatune
# Real SQuAD, if it is beside the checkout; otherwise qatune falls back to its embedded sample (and says so).
export QATUNE_DATA_DIR ?= $(abspath ../shared/data/squad)
RUN_DIR ?= runs/quick
RUN_TRAIN ?= 3000
RUN_EVAL ?= 500

.PHONY: install run test test-fast test-slow clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0   # the CPU wheel, before anything can pull a CUDA build
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(QATUNE) train --train-data squad:train --train-sample $(RUN_TRAIN) --eval-data squad:validation \
		--learning-rate 2e-4 --train-batch-size 16 \
		--eval-sample $(RUN_EVAL) --eval-steps 50 --output $(RUN_DIR)
	$(QATUNE) ask --model $(RUN_DIR) --compare-with default --questions examples/study_questions.json --top-k 3

test: test-fast test-slow

test-fast: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
