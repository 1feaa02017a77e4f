"""Embeddings and the Chroma store, shared by indexing (``ingest``) and answering (``search``).

The index is always swapped in whole: ingest builds new collections beside the live ones, copies
the embeddings of unchanged chunks, embeds only what changed, and then flips a pointer (the
metadata of the ``<name>__active`` collection). An interrupted ingest leaves the old index
answering; the half-built collections are removed by the next ingest.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from langchain_core.embeddings import Embeddings

from . import AssistantError, models
from .chunking import CHUNKER_VERSION, Chunk, chunk_documents
from .corpus import Document, parse_text
from .lexical import LexicalIndex
from .settings import Settings


class StoreError(AssistantError, RuntimeError):
    """The index cannot be used; the message says what to do."""


class SentenceTransformerEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over a sentence-transformers model, using its retrieval prompts."""

    def __init__(self, model: Any, name: str, batch_size: int = 16, cache_size: int = 4096) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self._cache: dict[tuple[str, str], Any] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _encode(self, kind: str, texts: list[str]) -> list[list[float]]:
        """Encode with the model's query or document prompt, remembering recent texts."""
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self._cache))
        if missing:
            encode = self.model.encode_query if kind == "query" else self.model.encode_document
            with self._lock:  # one forward pass at a time; torch already uses every core
                vectors = encode(missing, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            if len(self._cache) + len(missing) > self._cache_size:
                self._cache.clear()
            self._cache.update({(kind, t): v for t, v in zip(missing, vectors)})
        return [self._cache[(kind, t)].tolist() for t in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode("document", texts) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode("query", [text])[0]


def cosine(u: Any, v: Any) -> float:
    """Cosine of two embeddings: the vectors are normalised when encoded, so their dot product.

    >>> cosine([0.6, 0.8], [1.0, 0.0])
    0.6
    """
    return float(np.dot(u, v))


def resolve_embedding_model(name: str, cache_dir: Path) -> str:
    """A packaged model name becomes its verified cache path; paths and hub ids pass through."""
    if name in models.PACKAGED_MODELS:
        return str(models.require(name, cache_dir))
    if os.path.sep in name and not Path(name).exists():
        raise models.ModelError(f"embedding model path {name} does not exist; fix ASSISTANT_EMBEDDING_MODEL")
    return name


@lru_cache(maxsize=4)
def load_embeddings(name: str, cache_dir: Path) -> SentenceTransformerEmbeddings:
    """Load an embedding model once per process."""
    path = resolve_embedding_model(name, cache_dir)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    try:
        model = SentenceTransformer(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any load failure gets the same fix
        raise models.ModelError(
            f"could not load embedding model {name} ({type(exc).__name__}: {str(exc)[:200]}); "
            f"run `assistant models fetch --force` or pick another ASSISTANT_EMBEDDING_MODEL"
        ) from None
    return SentenceTransformerEmbeddings(model, name)


def _get_all(collection: Any, include: list[str], page: int = 5000) -> dict[str, list]:
    """Every record of a collection, read in pages (one big read exceeds SQLite's variable limit)."""
    got: dict[str, list] = {"ids": [], **{key: [] for key in include}}
    offset = 0
    while True:
        part = collection.get(include=include, limit=page, offset=offset)
        for key in got:
            got[key].extend(part[key] if part[key] is not None else [])
        if len(part["ids"]) < page:
            return got
        offset += page


@dataclass
class IngestReport:
    documents: int
    chunks: int
    embedded: int
    reused: int
    removed: int
    changed: bool


def make_client(settings: Settings, attempts: int = 3) -> Any:
    """A Chroma client: the server at ``chroma_url`` (with retries) or the local directory."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                client = chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    settings=chroma_settings,
                )
                client.heartbeat()
                return client
            except Exception as exc:  # noqa: BLE001 - connection errors come in many types
                if attempt == attempts:
                    raise StoreError(
                        f"Chroma server {settings.chroma_url} unreachable after {attempts} tries "
                        f"({type(exc).__name__}); start it (`chroma run --path DIR --port P`) or "
                        "unset ASSISTANT_CHROMA_URL to use the local directory"
                    ) from None
                time.sleep(delay)
                delay *= 2
    path = settings.chroma_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StoreError(
            f"data directory {path} is not writable ({exc.strerror}); fix its permissions or set "
            "ASSISTANT_HOME to another folder"
        ) from None
    try:
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(
            f"cannot open the index in {path} ({type(exc).__name__}: {str(exc)[:160]}); "
            f"move that folder away and run `assistant ingest` to rebuild it"
        ) from None


class Store:
    """The live index: chunks with embeddings, and the full documents they came from."""

    def __init__(self, settings: Settings, embeddings: Embeddings | None = None) -> None:
        self.settings = settings
        self._embeddings = embeddings
        self.client = make_client(settings)
        self.pointer_name = f"{settings.collection}__active"

    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            self._embeddings = load_embeddings(self.settings.embedding_model, self.settings.cache_dir)
        return self._embeddings

    @property
    def fingerprint(self) -> str:
        return f"{self.settings.embedding_model}|sentences={self.settings.chunk_sentences}|chunker={CHUNKER_VERSION}"

    def _pointer(self) -> dict[str, Any]:
        try:
            meta = self.client.get_collection(self.pointer_name).metadata or {}
        except Exception:  # noqa: BLE001 - "does not exist" differs by client type
            return {}
        return dict(meta)

    def _live(self) -> tuple[Any, Any]:
        pointer = self._pointer()
        if not pointer.get("chunks"):
            raise StoreError("no index yet; run `assistant ingest` first")
        try:
            return (
                self.client.get_collection(pointer["chunks"]),
                self.client.get_collection(pointer["docs"]),
            )
        except Exception as exc:  # noqa: BLE001
            raise StoreError(
                f"the index is damaged ({type(exc).__name__}); run `assistant ingest` to rebuild it"
            ) from None

    def info(self) -> dict[str, Any]:
        """What is indexed: counts, embedding model, documents."""
        pointer = self._pointer()
        if not pointer.get("chunks"):
            return {"chunks": 0, "documents": [], "fingerprint": None}
        chunks, docs = self._live()
        got = _get_all(docs, ["metadatas"])
        return {
            "chunks": chunks.count(),
            "documents": sorted(str(m.get("title")) for m in got["metadatas"] or []),
            "fingerprint": pointer.get("fingerprint"),
            "location": self.settings.chroma_url or str(self.settings.chroma_dir),
        }

    def chunks(self) -> list[Chunk]:
        """All live chunks, in document order."""
        collection, _ = self._live()
        got = _get_all(collection, ["documents", "metadatas"])
        try:
            found = [
                Chunk.from_metadata(i, t, m)
                for i, t, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])
            ]
        except (KeyError, ValueError, TypeError):
            raise StoreError("the index was built by another version; run `assistant ingest` to rebuild it") from None
        return sorted(found, key=lambda c: (c.doc_id, c.paragraph, c.sentence))

    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> {title, source text, meta}."""
        _, docs = self._live()
        got = _get_all(docs, ["documents", "metadatas"])
        return {
            i: {"title": m["title"], "source": t, "meta": json.loads(m["meta"])}
            for i, t, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])
        }

    def _lexical_dir(self, chunks_collection: str) -> Path:
        return self.settings.home / "lexical" / chunks_collection

    def lexical_index(self, chunks: list[Chunk] | None = None) -> LexicalIndex:
        """The live collection's BM25 index, memory-mapped from beside the Chroma index.

        Ingest writes it; its folder is named after the chunk collection, whose name is new at
        every ingest, so it flips with the pointer. An app whose data directory lacks it (the
        index lives on a Chroma server another machine filled) builds it once from the
        collection's chunks and keeps it under the same name; every process then reads that.
        """
        name = self._pointer().get("chunks")
        if not name:
            raise StoreError("no index yet; run `assistant ingest` first")
        folder = self._lexical_dir(name)
        try:
            return LexicalIndex.load(folder)
        except (FileNotFoundError, ValueError, OSError):
            shutil.rmtree(folder, ignore_errors=True)
        chunks = self.chunks() if chunks is None else chunks
        index = LexicalIndex.build([c.text for c in chunks], [c.id for c in chunks])
        index.save(folder)
        self._prune_lexical({name})
        return index

    def dense_search(self, query: str, n: int, doc: str | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) for the ``n`` nearest chunks, of document ``doc`` if given."""
        collection, _ = self._live()
        vector = self.embeddings.embed_query(query)
        try:
            got = collection.query(
                query_embeddings=[vector], n_results=min(n, collection.count()), include=["distances"],
                where={"doc_id": doc} if doc else None,
            )
        except Exception as exc:  # noqa: BLE001 - deleted, locked or corrupted under a running app
            raise StoreError(
                f"the index cannot be read ({type(exc).__name__}); run `assistant ingest` to rebuild it"
            ) from None
        return [(i, 1.0 - d) for i, d in zip(got["ids"][0], got["distances"][0])]

    def ingest(
        self,
        documents: list[Document],
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> IngestReport:
        """Make the index hold ``documents`` (plus, unless ``replace``, the other documents it had).

        Documents already in the index are re-chunked from their stored source, so every chunk is
        compared by content hash: only new or changed chunks are embedded. One ingest at a time
        per data directory: a second one fails at once instead of racing the first.
        """
        with self._ingest_lock():
            return self._ingest(documents, replace, progress)

    @contextmanager
    def _ingest_lock(self) -> Iterator[None]:
        path = self.settings.home / "ingest.lock"  # this machine's ingests (a Chroma server's too)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise StoreError(
                    f"another ingest (pid {holder}) is writing the index in {self.settings.home}; "
                    "wait for it to finish, then run `assistant ingest` again"
                ) from None
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _ingest(self, documents: list[Document], replace: bool, progress: Callable[[int], None] | None) -> IngestReport:
        pointer = self._pointer()
        old: dict[str, tuple[str, list[float]]] = {}
        old_sources: dict[str, str] = {}
        if pointer.get("chunks"):
            chunks_col, docs_col = self._live()
            got = _get_all(chunks_col, ["metadatas", "embeddings"])
            old = {i: (m.get("content_hash", ""), list(e)) for i, m, e in zip(got["ids"], got["metadatas"], got["embeddings"])}
            new_ids = {d.doc_id for d in documents}
            got_docs = _get_all(docs_col, ["documents", "metadatas"])
            for i, text, m in zip(got_docs["ids"], got_docs["documents"], got_docs["metadatas"]):
                old_sources[i] = text
                if not replace and i not in new_ids:
                    documents = documents + [parse_text(text, i, json.loads(m["meta"]))]
        same_model = pointer.get("fingerprint") == self.fingerprint
        chunks = chunk_documents(documents, self.settings.chunk_sentences)
        vectors: dict[str, list[float]] = {}
        to_embed: list[Chunk] = []
        for chunk in chunks:
            prior = old.get(chunk.id)
            if same_model and prior and prior[0] == chunk.content_hash:
                vectors[chunk.id] = prior[1]
            else:
                to_embed.append(chunk)
        unchanged = (
            same_model and not to_embed and {c.id for c in chunks} == set(old)
            and {d.doc_id: d.source for d in documents} == old_sources
        )
        report = IngestReport(
            documents=len(documents),
            chunks=len(chunks),
            embedded=len(to_embed),
            reused=len(vectors),
            removed=len(set(old) - {c.id for c in chunks}),
            changed=not unchanged,
        )
        if unchanged:
            return report
        batch = 32
        for start in range(0, len(to_embed), batch):
            part = to_embed[start : start + batch]
            for chunk, vector in zip(part, self.embeddings.embed_documents([c.text for c in part])):
                vectors[chunk.id] = vector
            if progress:
                progress(len(part))
        self._swap(chunks, vectors, documents)
        return report

    def _swap(self, chunks: list[Chunk], vectors: dict[str, list[float]], documents: list[Document]) -> None:
        """Write new collections beside the live ones, then flip the pointer to them."""
        tag = uuid.uuid4().hex[:8]
        base = self.settings.collection
        self._drop_orphans()
        chunks_col = self.client.create_collection(
            f"{base}__chunks_{tag}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        docs_col = self.client.create_collection(f"{base}__docs_{tag}", embedding_function=None)
        LexicalIndex.build([c.text for c in chunks], [c.id for c in chunks]).save(self._lexical_dir(chunks_col.name))
        self._add(chunks_col, chunks, lambda part: {
            "ids": [c.id for c in part],
            "documents": [c.text for c in part],
            "metadatas": [c.metadata() for c in part],
            "embeddings": [vectors[c.id] for c in part],
        })
        self._add(docs_col, documents, lambda part: {
            "ids": [d.doc_id for d in part],
            "documents": [d.source for d in part],
            "metadatas": [{"title": d.title, "meta": json.dumps(d.meta, ensure_ascii=False)} for d in part],
            "embeddings": [[1.0] for _ in part],
        })
        old = self._pointer()
        pointer = self.client.get_or_create_collection(self.pointer_name, embedding_function=None)
        pointer.modify(metadata={
            "chunks": chunks_col.name,
            "docs": docs_col.name,
            "fingerprint": self.fingerprint,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        for name in (old.get("chunks"), old.get("docs")):
            if name:
                self._delete(name)

    def _add(self, collection: Any, items: list, columns: Callable[[list], dict[str, list]]) -> None:
        """Add in batches no larger than 1,000 or what the Chroma client accepts."""
        size = min(1000, self.client.get_max_batch_size())
        for start in range(0, len(items), size):
            collection.add(**columns(items[start : start + size]))

    def _drop_orphans(self) -> None:
        """Remove collections left by an interrupted ingest (never the live ones)."""
        pointer = self._pointer()
        live = {pointer.get("chunks"), pointer.get("docs"), self.pointer_name}
        prefix = f"{self.settings.collection}__"
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and name not in live:
                self._delete(name)
        self._prune_lexical(live)

    def _prune_lexical(self, live: set) -> None:
        """Remove this collection's lexical index folders that no live collection names."""
        for folder in self._lexical_dir("").glob(f"*{self.settings.collection}__*"):
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)

    def _delete(self, name: str) -> None:
        shutil.rmtree(self._lexical_dir(name), ignore_errors=True)
        try:
            self.client.delete_collection(name)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
