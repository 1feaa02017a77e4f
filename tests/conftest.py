"""Shared fixtures. Real models load once per session; slow tests need --run-slow (make test passes it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "corpus" / "geheime-zusammenarbeit-rote-armee-reichswehr.txt"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests with real models, servers and a browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: needs --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc, timeout: float, log: Path | None = None) -> None:
    """Wait until ``url`` answers; fail early with the log if the server process exits."""
    import time
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:] if log else ''}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"{url} did not answer in {timeout:.0f} s: {log.read_text()[-2000:] if log else ''}")


@pytest.fixture
def settings_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings in a fresh data directory, isolated from the user's env and config."""
    for key in list(os.environ):
        if key.startswith("ASSISTANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    from assistant.settings import load_settings

    def make(**overrides):
        overrides.setdefault("home", tmp_path / "home")
        return load_settings(**overrides)

    return make


class BagOfWordsEmbeddings:
    """A fake for unit tests: normalised hashed bag of words, so shared words mean similarity."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        import hashlib
        import math

        from assistant.retrieval import tokenize

        vec = [0.0] * self.size
        for tok in tokenize(text) or ["_"]:
            vec[int(hashlib.md5(tok.encode()).hexdigest(), 16) % self.size] += 1.0
        norm = math.sqrt(sum(v * v for v in vec))
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


@pytest.fixture
def fake_embeddings():
    return BagOfWordsEmbeddings()


@pytest.fixture(scope="session")
def real_embeddings():
    """The packaged EmbeddingGemma, loaded once per test session."""
    from assistant.settings import load_settings
    from assistant.store import load_embeddings

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
