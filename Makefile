# `make demo` and `make test` set up .venv on first use (pip, ~2 minutes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_CONFIG := configs/baselines/clip-sdm_tiny_synthperson.py
DEMO_DIR := work_dirs/demo

.PHONY: demo test venv clean

$(STAMP): requirements/runtime.txt requirements/tests.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# Train the tiny CLIP-SDM baseline on SynthPerson (CPU), then evaluate the
# last checkpoint on the SynthPerson test split.
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
		--work-dir $(DEMO_DIR) --out $(DEMO_DIR)/test_metrics.json

test: $(STAMP)
	$(PY) -m pytest tests -q

clean:
	rm -rf $(VENV) work_dirs
