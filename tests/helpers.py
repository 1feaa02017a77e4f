"""Plain helpers the tests import (`from helpers import ARTICLE`); fixtures live in conftest.py.

pytest's default ``prepend`` import mode puts this directory on ``sys.path`` for the test modules
in it (they are not a package), so ``import helpers`` works from any working directory.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from assistant.eval.servers import free_port, wait_for_http  # noqa: F401 - shared with the benchmarks

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "corpus" / "geheime-zusammenarbeit-rote-armee-reichswehr.txt"


def one_chunk(sentences: list[str]):
    """One chunk of ``sentences`` joined by spaces, and a span for each: a paragraph to choose evidence from."""
    from assistant.chunking import Chunk, Span

    text = " ".join(sentences)
    spans = tuple(Span(t, text.index(t), text.index(t) + len(t)) for t in sentences)
    return Chunk("c", "d", "T", 0, 0, text, 0, len(text), spans, (), {}, ""), spans


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
