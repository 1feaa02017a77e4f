"""Embeddings and the Chroma store, shared by indexing (``ingest``) and answering (``search``).

The index is always swapped in whole: ingest builds new collections beside the live ones, copies
the embeddings of unchanged chunks, embeds only what changed, and then flips a pointer (the
metadata of the ``<name>__active`` collection). An interrupted ingest leaves the old index
answering; the half-built collections are removed by the next ingest.
"""

from __future__ import annotations

from . import AssistantError

import json
import os
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from langchain_core.embeddings import Embeddings

from . import models
from .chunking import Chunk, chunk_documents
from .corpus import Document
from .settings import Settings


class StoreError(AssistantError, RuntimeError):
    """The index cannot be used; the message says what to do."""


class SentenceTransformerEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over a sentence-transformers model, using its retrieval prompts."""

    def __init__(self, model: Any, name: str, batch_size: int = 16) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode_document(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        vector = self.model.encode_query([text], normalize_embeddings=True, convert_to_numpy=True)
        return vector[0].tolist()


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

    try:
        model = SentenceTransformer(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any load failure gets the same fix
        raise models.ModelError(
            f"could not load embedding model {name} ({type(exc).__name__}: {str(exc)[:200]}); "
            f"run `assistant models fetch --force` or pick another ASSISTANT_EMBEDDING_MODEL"
        ) from None
    return SentenceTransformerEmbeddings(model, name)


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
        return f"{self.settings.embedding_model}|sentences={self.settings.chunk_sentences}"

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
        got = docs.get(include=["metadatas"])
        return {
            "chunks": chunks.count(),
            "documents": sorted(str(m.get("title")) for m in got["metadatas"] or []),
            "fingerprint": pointer.get("fingerprint"),
            "location": self.settings.chroma_url or str(self.settings.chroma_dir),
        }

    def chunks(self) -> list[Chunk]:
        """All live chunks, in document order."""
        collection, _ = self._live()
        got = collection.get(include=["documents", "metadatas"])
        found = [
            Chunk.from_metadata(i, t, m)
            for i, t, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])
        ]
        return sorted(found, key=lambda c: (c.doc_id, c.paragraph, c.sentence))

    def documents(self) -> dict[str, dict[str, Any]]:
        """doc_id -> {title, source text, meta}."""
        _, docs = self._live()
        got = docs.get(include=["documents", "metadatas"])
        return {
            i: {"title": m["title"], "source": t, "meta": json.loads(m["meta"])}
            for i, t, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])
        }

    def dense_search(self, query: str, n: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) for the ``n`` nearest chunks."""
        collection, _ = self._live()
        vector = self.embeddings.embed_query(query)
        got = collection.query(query_embeddings=[vector], n_results=min(n, collection.count()), include=["distances"])
        return [(i, 1.0 - d) for i, d in zip(got["ids"][0], got["distances"][0])]

    def ingest(
        self,
        documents: list[Document],
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> IngestReport:
        """Make the index hold ``documents`` (plus, unless ``replace``, the other documents it had)."""
        new_chunks = chunk_documents(documents, self.settings.chunk_sentences)
        pointer = self._pointer()
        old: dict[str, tuple[str, str, dict, list[float]]] = {}
        old_docs: dict[str, tuple[str, dict]] = {}
        if pointer.get("chunks"):
            chunks_col, docs_col = self._live()
            got = chunks_col.get(include=["documents", "metadatas", "embeddings"])
            for i, t, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
                old[i] = (m["content_hash"], t, m, list(e))
            got_docs = docs_col.get(include=["documents", "metadatas"])
            old_docs = {i: (t, m) for i, t, m in zip(got_docs["ids"], got_docs["documents"], got_docs["metadatas"])}
        same_model = pointer.get("fingerprint") == self.fingerprint
        new_ids = {d.doc_id for d in documents}
        keep_docs = {} if replace else {i: v for i, v in old_docs.items() if i not in new_ids}
        kept = [(i, v) for i, v in old.items() if v[2]["doc_id"] in keep_docs]

        reuse: dict[str, list[float]] = {}
        to_embed: list[Chunk] = []
        for chunk in new_chunks:
            prior = old.get(chunk.id)
            if same_model and prior and prior[0] == chunk.content_hash:
                reuse[chunk.id] = prior[3]
            else:
                to_embed.append(chunk)
        final_ids = {c.id for c in new_chunks} | {i for i, _ in kept}
        same_sources = all(
            d.doc_id in old_docs and old_docs[d.doc_id][0] == d.source for d in documents
        )
        unchanged = same_model and not to_embed and final_ids == set(old) and same_sources
        if not same_model:  # a new embedding model means every kept chunk is embedded again
            rebuilt = [Chunk.from_metadata(i, v[1], v[2]) for i, v in kept]
            to_embed += rebuilt
            new_chunks = new_chunks + rebuilt
            kept = []
        report = IngestReport(
            documents=len(documents) + len(keep_docs),
            chunks=len(final_ids),
            embedded=len(to_embed),
            reused=len(reuse) + len(kept),
            removed=len(set(old) - final_ids),
            changed=not unchanged,
        )
        if unchanged:
            return report

        vectors: dict[str, list[float]] = dict(reuse)
        batch = 32
        for start in range(0, len(to_embed), batch):
            part = to_embed[start : start + batch]
            for chunk, vector in zip(part, self.embeddings.embed_documents([c.text for c in part])):
                vectors[chunk.id] = vector
            if progress:
                progress(len(part))
        self._swap(new_chunks, vectors, kept, documents, keep_docs)
        return report

    def _swap(
        self,
        new_chunks: list[Chunk],
        vectors: dict[str, list[float]],
        kept: list[tuple[str, tuple[str, str, dict, list[float]]]],
        documents: list[Document],
        keep_docs: dict[str, tuple[str, dict]],
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        base = self.settings.collection
        self._drop_orphans()
        chunks_col = self.client.create_collection(
            f"{base}__chunks_{tag}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        docs_col = self.client.create_collection(f"{base}__docs_{tag}", embedding_function=None)
        rows = [(c.id, c.text, c.metadata(), vectors[c.id]) for c in new_chunks]
        rows += [(i, v[1], v[2], v[3]) for i, v in kept]
        for start in range(0, len(rows), 1000):
            part = rows[start : start + 1000]
            chunks_col.add(
                ids=[r[0] for r in part],
                documents=[r[1] for r in part],
                metadatas=[r[2] for r in part],
                embeddings=[r[3] for r in part],
            )
        doc_rows = [
            (d.doc_id, d.source, {"title": d.title, "meta": json.dumps(d.meta, ensure_ascii=False)})
            for d in documents
        ] + [(i, t, m) for i, (t, m) in keep_docs.items()]
        docs_col.add(
            ids=[r[0] for r in doc_rows],
            documents=[r[1] for r in doc_rows],
            metadatas=[r[2] for r in doc_rows],
            embeddings=[[1.0] for _ in doc_rows],
        )
        old = self._pointer()
        pointer_meta = {
            "chunks": chunks_col.name,
            "docs": docs_col.name,
            "fingerprint": self.fingerprint,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        pointer = self.client.get_or_create_collection(self.pointer_name, embedding_function=None)
        pointer.modify(metadata=pointer_meta)
        for name in (old.get("chunks"), old.get("docs")):
            if name:
                self._delete(name)

    def _drop_orphans(self) -> None:
        """Remove collections left by an interrupted ingest (never the live ones)."""
        live = {self._pointer().get("chunks"), self._pointer().get("docs"), self.pointer_name}
        prefix = f"{self.settings.collection}__"
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and name not in live:
                self._delete(name)

    def _delete(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
