"""Shared fixtures. Real models load once per session; slow tests need --run-slow (make test passes it).

Plain helpers (paths, ports, the fake embedder) are in helpers.py; import them from there, not from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ARTICLE, BagOfWordsEmbeddings

# What the app reads from the environment: its own settings, and the OpenAI SDK's key and URL.
APP_VARIABLES = ("ASSISTANT_", "OPENAI_")
# Where `assistant models fetch` put the models (1.5 GB), read before any test isolates the
# environment: the real-model tests load them from there. Unset means the default cache, which
# isolation leaves alone (it follows XDG_CACHE_HOME, not an ASSISTANT_* variable).
MODEL_CACHE = os.environ.get("ASSISTANT_CACHE_DIR")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests with real models, servers and a browser")


def pytest_configure(config: pytest.Config) -> None:
    """Process set-up before any test module is imported; undone when pytest finishes.

    huggingface_hub reads HF_HUB_OFFLINE once, when it is imported, and test modules import it (through
    gradio and sentence-transformers) at collection, so setting it in a fixture would be too late.
    ANONYMIZED_TELEMETRY is inherited by the `chroma run` servers the slow tests start.
    """
    process_env = pytest.MonkeyPatch()
    process_env.setenv("HF_HUB_OFFLINE", "1")
    process_env.setenv("ANONYMIZED_TELEMETRY", "False")
    config.add_cleanup(process_env.undo)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: needs --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Hide the developer's settings: no ASSISTANT_*/OPENAI_* variables, no .env, a data directory at ``home``.

    The data directory is also where the config file is looked for, so the developer's
    ``.assistant/assistant.toml`` is never read either.
    """
    for key in list(os.environ):
        if key.startswith(APP_VARIABLES):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    if MODEL_CACHE:
        monkeypatch.setenv("ASSISTANT_CACHE_DIR", MODEL_CACHE)
    monkeypatch.setenv("PYTHON_DOTENV_DISABLED", "1")  # `assistant.cli.main` would load the repo's .env


@pytest.fixture(scope="session", autouse=True)
def session_env(tmp_path_factory: pytest.TempPathFactory):
    """The isolation below for session- and module-scoped fixtures, which are set up before it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, tmp_path_factory.mktemp("session-home"))
        yield


@pytest.fixture(autouse=True)
def env_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts isolated from the developer's settings, with a fresh data directory
    (``tmp_path / "home"``); it may change the environment further only through ``monkeypatch``."""
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture
def settings_factory():
    """``load_settings`` in the test's isolated environment (so the data directory is ``tmp_path / "home"``)."""
    from assistant.settings import load_settings

    return load_settings


@pytest.fixture
def fake_embeddings():
    return BagOfWordsEmbeddings()


@pytest.fixture(scope="session")
def real_embeddings():
    """The packaged EmbeddingGemma, loaded once per test session."""
    from assistant.embeddings import load_embeddings
    from assistant.settings import load_settings

    settings = load_settings()
    return load_embeddings(settings.embedding_model, settings.cache_dir)


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, real_embeddings):
    """The article ingested with the real embedder into a session-wide tmp Chroma directory."""
    from assistant.corpus import load_documents
    from assistant.settings import load_settings
    from assistant.store import Store

    settings = load_settings(home=tmp_path_factory.mktemp("real-home"))
    store = Store(settings, real_embeddings)
    store.ingest(load_documents([ARTICLE]))
    return settings, store
