"""Plain helpers the tests import (`from helpers import ARTICLE`); fixtures live in conftest.py.

pytest's default ``prepend`` import mode puts this directory on ``sys.path`` for the test modules
in it (they are not a package), so ``import helpers`` works from any working directory.
"""

from __future__ import annotations

import hashlib
import math
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "corpus" / "geheime-zusammenarbeit-rote-armee-reichswehr.txt"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    """Wait until ``url`` answers; fail early with the log if the server process exits."""
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


class BagOfWordsEmbeddings:
    """A fake for unit tests: normalised hashed bag of words, so shared words mean similarity."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
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
