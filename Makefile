# `make demo` and `make test` set up .venv on first use (pip, ~2 minutes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_CONFIG := configs/gadms/gadms_tiny_1xb64_synthperson-noise40_demo.py
DEMO_DIR := work_dirs/demo
BASELINE_CONFIG := configs/baselines/clip-sdm_tiny_1xb64_synthperson.py
BASELINE_DIR := work_dirs/demo_baseline

.PHONY: demo demo-baseline serve test venv clean

$(STAMP): requirements/runtime.txt requirements/tests.txt \
		requirements/corpus.txt requirements/serve.txt \
		requirements/constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c requirements/constraints.txt \
		-r requirements/runtime.txt -r requirements/tests.txt \
		-r requirements/corpus.txt -r requirements/serve.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# Train tiny GA-DMS on noisy SynthPerson (CPU), evaluate the last checkpoint
# on the SynthPerson test split (metrics and per-query rankings), then draw
# a retrieval picture and the token scores / dual masks of a few captions.
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
		--work-dir $(DEMO_DIR) --out $(DEMO_DIR)/test_metrics.json \
		--out-rankings $(DEMO_DIR)/rankings.jsonl
	$(PY) tools/retrieve.py $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
		--split test --query-caption 0 --topk 8 \
		--out-file $(DEMO_DIR)/retrieval.png
	$(PY) tools/analysis_tools/visualize_token_scores.py $(DEMO_CONFIG) \
		"$$(cat $(DEMO_DIR)/last_checkpoint)" --num 2 \
		--out-dir $(DEMO_DIR)/token_scores
	@echo "metrics:      $(DEMO_DIR)/test_metrics.json"
	@echo "rankings:     $(DEMO_DIR)/rankings.jsonl"
	@echo "retrieval:    $(DEMO_DIR)/retrieval.png"
	@echo "token scores: $(DEMO_DIR)/token_scores/overview.png"

# Search the demo model's test split in the browser (after make demo):
# http://127.0.0.1:7860
serve: $(STAMP)
	$(PY) tools/serve.py $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
		--split test

# The CLIP-SDM baseline of the same size on clean SynthPerson.
demo-baseline: $(STAMP)
	rm -rf $(BASELINE_DIR)
	$(PY) tools/train.py $(BASELINE_CONFIG) --work-dir $(BASELINE_DIR)
	$(PY) tools/test.py $(BASELINE_CONFIG) \
		"$$(cat $(BASELINE_DIR)/last_checkpoint)" --work-dir $(BASELINE_DIR) \
		--out $(BASELINE_DIR)/test_metrics.json

test: $(STAMP)
	$(PY) -m pytest tests -q

clean:
	rm -rf $(VENV) work_dirs
