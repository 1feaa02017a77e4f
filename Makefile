# The two commands: `make run` (set up, index, start the chat) and `make test` (set up, run tests).
# Both are idempotent; the second time they only check stamps.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: setup setup-dev models run test test-fast browser eval eval-baselines bench-retrieval bench-scale bench-lexical bench-language bench-chat screenshot loadtest lint clean

setup: $(STAMP) models
# Tests, evals and benchmarks also need the [dev] and [eval] extras; the chat needs neither.
setup-dev: $(DEV_STAMP) models

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llama.cpp compiles from source, by default for the CPU it builds on ("native"). On a virtual
# machine whose CPU reports AMX but does not let a process use it, such a build dies at the first
# matrix multiply (a general protection fault in libggml-cpu at `ldtilecfg`). On x86-64 it is
# therefore built for AVX2, which every x86-64 server of the last decade has; elsewhere natively.
# It gets a stamp of its own, so a venv that holds a native build is rebuilt once, and skips pip's
# cache, which would hand back that build.
LLAMA_CPP := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml | head -1)
LLAMA_STAMP := $(VENV)/.built-$(subst ==,-,$(LLAMA_CPP))
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif

$(LLAMA_STAMP): | $(BIN)/python
	$(PIP) install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --quiet --no-cache-dir --force-reinstall --no-deps "$(LLAMA_CPP)"
	touch $@

# torch first, pinned to the CPU build on disk; anything later that wants torch finds it satisfied.
$(STAMP): pyproject.toml $(LLAMA_STAMP) | $(BIN)/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[server]"
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) install --quiet -e ".[server,eval,dev]"
	touch $(DEV_STAMP)

# Infinity, the embeddings server the team-topology test runs, in a venv of its own: it pins
# sentence-transformers < 4 and numpy < 2, which the app's own dependencies outgrew.
INFINITY := .venv-infinity/bin/infinity_emb
$(INFINITY):
	$(PYTHON) -m venv .venv-infinity
	.venv-infinity/bin/python -m pip install --quiet --upgrade pip
	.venv-infinity/bin/python -m pip install --quiet torch==2.13.0 "infinity-emb[server,torch]==0.0.78"

models: $(STAMP)
	$(BIN)/assistant models fetch

browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(BIN)/assistant ingest
	$(BIN)/assistant serve

test: setup-dev browser $(INFINITY)
	$(BIN)/assistant models fetch qwen2.5-coder-0.5b-instruct
	$(BIN)/python -m pytest --run-slow

test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest

# Test split, our backends and the whole-article baseline in one run (~9 min here).
eval: setup-dev
	$(BIN)/assistant ingest
	rm -rf runs/latest  # a fresh run: the eval resumes whatever a folder holds, even from older code
	$(BIN)/assistant eval --qa eval/qa.jsonl --split test --baseline --out runs/latest \
		--backend local --backend extractive --backend baseline:article

# The slower baselines (BM25 + simple prompt, textbook LangChain at ~30 s a question: ~1 h here).
eval-baselines: setup-dev
	$(BIN)/assistant ingest
	rm -rf runs/baselines
	$(BIN)/assistant eval --qa eval/qa.jsonl --split test --baseline --out runs/baselines \
		--backend baseline:bm25 --backend baseline:textbook

bench-retrieval: setup-dev
	$(BIN)/assistant ingest
	$(BIN)/assistant eval --qa eval/qa.jsonl --retrieval-only --baseline --out runs/retrieval

# What a person waits for: a 6-turn conversation in headless Chromium against a fresh `assistant serve`.
bench-chat: setup-dev browser
	$(BIN)/assistant ingest
	$(BIN)/python eval/bench_chat.py --out runs/chat
	cp runs/chat/chat.png docs/chat.png

# Index size 10^2..10^5 chunks: ingest, disk, memory, retrieval latency, recall (~25 min here); then
# embedding throughput in process vs Infinity, and 10^3 / 10^5 chunks through `chroma run` (~20 min).
bench-scale: setup-dev $(INFINITY)
	$(BIN)/python eval/bench_scale.py --sizes 100 1000 10000 100000 --out runs/scale
	cp runs/scale/scale.png docs/scale.png
	$(BIN)/python eval/bench_scale.py --throughput 256 --out runs/scale-server
	$(BIN)/python eval/bench_scale.py --server --sizes 1000 100000 --out runs/scale-server

# BM25 start-up load and query at 10^3..10^5 chunks, against the hand-written index of ef82bf8 (~3 min).
bench-lexical: setup-dev
	rm -rf runs/before-bm25s && git worktree add --force --detach runs/before-bm25s ef82bf8
	$(BIN)/python eval/bench_lexical.py --sizes 1000 10000 100000 --before $(CURDIR)/runs/before-bm25s --out runs/lexical
	git worktree remove --force runs/before-bm25s

# Language identification on the eval questions and 44 short questions in 8 languages, against ef82bf8.
bench-language: setup-dev
	rm -rf runs/before-langid && git worktree add --force --detach runs/before-langid ef82bf8
	$(BIN)/python eval/bench_language.py --before $(CURDIR)/runs/before-langid
	git worktree remove --force runs/before-langid

screenshot: setup-dev browser
	SCREENSHOT_TO=docs/screenshot.png $(BIN)/python -m pytest -q --run-slow tests/test_browser.py -k local_model

lint: $(DEV_STAMP)
	$(BIN)/ruff check assistant tests

clean:
	rm -rf $(VENV) .venv-infinity .assistant runs

loadtest: setup-dev
	$(BIN)/assistant ingest
	$(BIN)/python eval/loadtest.py --backend extractive --sessions 1 4 16 32
	$(BIN)/python eval/loadtest.py --backend local --sessions 1 2 4
