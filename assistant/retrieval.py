"""Hybrid retrieval: dense (Chroma) + BM25 (:mod:`assistant.lexical`), fused by reciprocal rank.

The retriever is a LangChain ``BaseRetriever``; each returned ``Document`` carries the chunk's
metadata plus ``chunk_id``, ``score`` (fused), ``dense_score`` (cosine) and ``lexical_score``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from . import AssistantError
from .chunking import Chunk, Span
from .embeddings import cosine
from .lexical import ASKING, LexicalIndex, held, tokenize
from .settings import Settings
from .store import Store

DEFAULTS = Settings.model_fields  # the tuned numbers' one home; the defaults below read it


def rrf(rankings: list[list[str]], k: int = 60, weights: list[float] | None = None) -> dict[str, float]:
    """Reciprocal rank fusion.

    >>> sorted(rrf([["a", "b"], ["b", "c"]]).items(), key=lambda kv: -kv[1])[0][0]
    'b'
    """
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = defaultdict(float)
    for ranking, weight in zip(rankings, weights):
        for rank, key in enumerate(ranking):
            fused[key] += weight / (k + rank + 1)
    return dict(fused)


def chunk_to_document(chunk: Chunk, **scores: float) -> Document:
    meta: dict[str, Any] = chunk.metadata() | {"chunk_id": chunk.id} | scores
    return Document(page_content=chunk.text, metadata=meta, id=chunk.id)


class HybridRetriever(BaseRetriever):
    """Dense + lexical retrieval over the live index, fused by weighted reciprocal rank."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Store
    k: int = 4
    fetch_k: int = 20
    rrf_k: int = DEFAULTS["rrf_k"].default
    lexical_weight: float = DEFAULTS["fusion_lexical_weight"].default
    doc_filter: str | None = None
    _chunks: list[Chunk] = PrivateAttr(default_factory=list)
    _by_id: dict[str, Chunk] = PrivateAttr(default_factory=dict)
    _lexical: LexicalIndex | None = PrivateAttr(default=None)

    @classmethod
    def for_settings(cls, settings: Any, store: Store | None = None) -> HybridRetriever:
        """The retriever ``settings`` describe, over ``store`` (by default the one they name)."""
        return cls(store=store or Store(settings), k=settings.k, fetch_k=settings.fetch_k,
                   rrf_k=settings.rrf_k, lexical_weight=settings.fusion_lexical_weight)

    def refresh(self) -> None:
        """(Re)load chunks and the lexical index from the store."""
        self._chunks, self._lexical = self.store.snapshot()
        self._by_id = {c.id: c for c in self._chunks}

    @property
    def chunks(self) -> list[Chunk]:
        if self._lexical is None:
            self.refresh()
        return self._chunks

    def chunk(self, chunk_id: str) -> Chunk:
        if self._lexical is None:
            self.refresh()
        return self._by_id[chunk_id]

    def search(
        self, query: str, k: int | None = None, doc: str | None = None, dense: bool = True, words: str = "",
    ) -> list[Document]:
        """Ranked passages for ``query`` (``invoke`` with an explicit ``k``, and ``doc`` to restrict
        this one search to one document; the retriever's ``doc_filter`` otherwise). ``dense=False``
        ranks by BM25 alone, without the embedder (while it loads). ``words`` are searched by BM25
        only (the corpus's words for a question's foreign ones)."""
        chunks = self.chunks
        k = k or self.k
        doc = doc or self.doc_filter
        fetch = max(self.fetch_k, k)
        found = self.store.dense_search(query, fetch, doc) if dense else []
        dense = [(i, s) for i, s in found if i in self._by_id]
        assert self._lexical is not None
        lexical = [(i, s) for i, s in self._lexical.search(f"{query} {words}", len(chunks) if doc else fetch) if i in self._by_id]
        if doc:
            lexical = [(i, s) for i, s in lexical if self._by_id[i].doc_id == doc][:fetch]
        fused = rrf([[i for i, _ in dense], [i for i, _ in lexical]], self.rrf_k, [1.0, self.lexical_weight])
        dense_scores, lexical_scores = dict(dense), dict(lexical)
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        return [
            chunk_to_document(
                self._by_id[i],
                score=round(score, 6),
                dense_score=round(dense_scores.get(i, 0.0), 4),
                lexical_score=round(lexical_scores.get(i, 0.0), 4),
            )
            for i, score in ranked
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.search(query)


class QueryError(AssistantError, ValueError):
    """The question cannot be used as given."""


# Cyrillic and Greek letters that look like Latin ones (after Unicode's confusables.txt).
_LOOKALIKES = str.maketrans(
    "аеорсухѕіјԁһӏАВЕКМНОРСТУХЅІЈαεοιυνρκχτΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxsijdhlABEKMHOPCTYXSIJaeoiuvpkxtABEZHIKMNOPTYX",
)
_MIXED = re.compile(r"\w*[A-Za-zÀ-ÿ]\w*")


def _unmask(word: re.Match) -> str:
    """A word written in Latin letters with Cyrillic or Greek look-alikes among them, in Latin."""
    text = word.group()
    return text.translate(_LOOKALIKES) if any("\u0370" <= ch <= "\u04ff" for ch in text) else text


def clean_question(text: str) -> str:
    """The one input cleaner of every entry point (UI, CLI, eval, API): Unicode NFC, control and
    format characters (zero-width, bidi overrides) removed, an invisible separator between two
    words kept as a space, Cyrillic or Greek look-alike letters inside a Latin word made Latin
    (words wholly in another script stay as they are), whitespace collapsed.

    >>> clean_question("  Wer?\\u200b\\x00 "), clean_question("\\u202eWo\\u200bwurden\\u202c Piloten?")
    ('Wer?', 'Wo wurden Piloten?')
    >>> clean_question("W\\u0435r w\\u0430r d\\u03b5r Staatssekretär? Кто такой?")
    'Wer war der Staatssekretär? Кто такой?'
    """
    text = unicodedata.normalize("NFC", text or "")
    text = _MIXED.sub(_unmask, text)
    text = re.sub(r"(?<=\w)[\u200b\u2060\ufeff](?=\w)", " ", text)
    cleaned = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    )
    return re.sub(r"\s+", " ", cleaned).strip()


def validate_query(text: str, limit: int) -> str:
    """:func:`clean_question`, then reject empty or oversized questions.

    >>> validate_query("  Wer?\\u200b\\x00 ", 100)
    'Wer?'
    """
    cleaned = clean_question(text)
    if not cleaned:
        raise QueryError("the question is empty; type a question about the article")
    if len(cleaned) > limit:
        raise QueryError(
            f"the question is {len(cleaned):,} characters; the limit is {limit:,} "
            "(ASSISTANT_MAX_QUESTION_CHARS); shorten it"
        )
    return cleaned


def rank_sentences(
    query: str, chunks: list[Chunk], embeddings: Any, lexical_weight: float = DEFAULTS["sentence_lexical_weight"].default,
    context: str = "", context_weight: float = 0.0, words: str = "", references: bool = False,
) -> list[tuple[float, Chunk, Span]]:
    """Every sentence of ``chunks`` scored against the query, best first.

    The score is the cosine similarity of query and sentence plus a share of the query's content
    words that the sentence contains; it picks evidence for the prompt and extractive answers.
    Without ``embeddings`` (while the embedder loads) the share of words alone ranks, in full
    (on the cosine's scale, so that the margins of evidence choice mean the same). ``words``
    join the query's own in that share. A ``context`` (a follow-up's topic) is scored the same way
    and averaged in at ``context_weight``. With ``references`` (a question about sources) the words
    of a sentence's Einzelnachweise count as its own.
    """
    spans = [(c, s) for c in chunks for s in c.spans]
    if not spans:
        return []
    texts = [s.text for _, s in spans]
    vectors = embeddings.embed_documents(texts) if embeddings is not None else None
    sentence_words = [set(tokenize(t)) for t in texts]
    if references:
        sentence_words = [held | {t for text in c.cited_by(s) for t in tokenize(text)}
                          for held, (c, s) in zip(sentence_words, spans)]
    lexical_weight = lexical_weight if vectors is not None else 1.0

    def scores(text: str, more: str = "") -> list[float]:
        meaning = [0.0] * len(spans)
        if vectors is not None:
            qv = embeddings.embed_query(text)
            meaning = [cosine(qv, v) for v in vectors]
        qtok = set(tokenize(f"{text} {more}")) - ASKING
        return [similar + lexical_weight * (sum(held(t, words) for t in qtok) / len(qtok) if qtok else 0.0)
                for similar, words in zip(meaning, sentence_words)]

    total = scores(query, words)
    if context and context_weight > 0:
        total = [(own + context_weight * other) / (1 + context_weight) for own, other in zip(total, scores(context))]
    scored = [(score, chunk, span) for score, (chunk, span) in zip(total, spans)]
    return sorted(scored, key=lambda t: -t[0])
