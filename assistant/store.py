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
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from langchain_core.embeddings import Embeddings

from . import AssistantError
from .chunking import CHUNKER_VERSION, Chunk, chunk_documents
from .corpus import Document, parse_text
from .embeddings import embedder_id, embeddings_for
from .lexical import LexicalIndex
from .settings import Settings


class StoreError(AssistantError, RuntimeError):
    """The index cannot be used; the message says what to do."""


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
        self._loading = threading.Lock()
        self.client = make_client(settings)
        self.pointer_name = f"{settings.collection}__active"

    @property
    def embeddings(self) -> Embeddings:
        """The embedder, loaded at first use; a question that comes while the start-up loads it
        waits for that load instead of starting a second one (which cost the first answer seconds)."""
        if self._embeddings is None:
            with self._loading:
                if self._embeddings is None:
                    self._embeddings = embeddings_for(self.settings)
        return self._embeddings

    @property
    def embedder(self) -> str:
        """The model this process embeds with (what an index it builds records)."""
        return embedder_id(self.settings.embedding_model)

    @property
    def fingerprint(self) -> str:
        """What the vectors depend on: the embedder, chunking, and prompts given instead of the model's."""
        s = self.settings
        prompts = "".join(f"|{kind}={p}" for kind, p in (("query", s.embedding_query_prompt), ("document", s.embedding_document_prompt)) if p)
        return f"{self.embedder}|sentences={s.chunk_sentences}|chunker={CHUNKER_VERSION}{prompts}"

    def _check_embedder(self, pointer: dict[str, Any]) -> None:
        """Refuse to mix: questions and chunks must be embedded by the same model, same prompts."""

        def embedding(fingerprint: str) -> str:
            return "|".join(p for p in fingerprint.split("|") if not p.startswith(("sentences=", "chunker=")))

        recorded = embedding(str(pointer.get("fingerprint") or ""))
        if recorded and recorded != embedding(self.fingerprint):
            raise StoreError(
                f"the index was built with the embedder {recorded}, and this process embeds with "
                f"{self.embedder}; run `assistant ingest --replace` to rebuild it with {self.embedder}, "
                f"or set ASSISTANT_EMBEDDING_MODEL to {recorded}"
            )

    def _pointer(self) -> dict[str, Any]:
        try:
            meta = self.client.get_collection(self.pointer_name).metadata or {}
        except Exception:  # noqa: BLE001 - "does not exist" differs by client type
            return {}
        return dict(meta)

    def _live(self, pointer: dict[str, Any] | None = None) -> tuple[Any, Any]:
        pointer = pointer or self._pointer()
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

    def chunks(self, pointer: dict[str, Any] | None = None) -> list[Chunk]:
        """All live chunks (of the index ``pointer`` names, by default the live one), in document order."""
        collection, _ = self._live(pointer)
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

    def snapshot(self) -> tuple[list[Chunk], LexicalIndex]:
        """The live chunks and their BM25 index, both of the one index the pointer names now.

        The BM25 index is memory-mapped from beside the Chroma index: ingest writes it, in a folder
        named after the chunk collection, whose name is new at every ingest, so it flips with the
        pointer. An app whose data directory lacks it (the index lives on a Chroma server another
        machine filled) builds it once from that collection's chunks and keeps it under the same
        name; every process of that machine then reads it.
        """
        pointer = self._pointer()
        chunks = self.chunks(pointer)
        folder = self._lexical_dir(pointer["chunks"])
        try:
            return chunks, LexicalIndex.load(folder)
        except (FileNotFoundError, ValueError, OSError):
            shutil.rmtree(folder, ignore_errors=True)
        index = LexicalIndex.build([c.text for c in chunks], [c.id for c in chunks])
        index.save(folder)
        return chunks, index

    def dense_search(self, query: str, n: int, doc: str | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) for the ``n`` nearest chunks, of document ``doc`` if given."""
        pointer = self._pointer()
        collection, _ = self._live(pointer)
        self._check_embedder(pointer)
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
        progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Make the index hold ``documents`` (plus, unless ``replace``, the other documents it had).

        Documents already in the index are re-chunked from their stored source, so every chunk is
        compared by content hash: only new or changed chunks are embedded. Each embedded batch is
        written at once into the collection being built, so an interrupted ingest is resumed by
        the next one, which embeds only what the interrupted one had not. ``progress(n, total)``
        is called after each batch. One ingest at a time per data directory: a second one fails
        at once instead of racing the first. An index built by another embedder is only replaced
        (``replace``), never mixed.
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

    def _vectors(self, collection: Any) -> dict[str, tuple[str, list[float]]]:
        """chunk id -> (content hash, vector) of every record in ``collection``."""
        got = _get_all(collection, ["metadatas", "embeddings"])
        return {i: (m.get("content_hash", ""), list(e)) for i, m, e in zip(got["ids"], got["metadatas"], got["embeddings"])}

    def _interrupted(self) -> dict[str, tuple[str, list[float]]]:
        """What ingests that did not finish embedded with this fingerprint, to be reused."""
        pointer = self._pointer()
        found: dict[str, tuple[str, list[float]]] = {}
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(f"{self.settings.collection}__chunks_") and name != pointer.get("chunks"):
                partial = self.client.get_collection(name)
                if (partial.metadata or {}).get("fingerprint") == self.fingerprint:
                    found |= self._vectors(partial)
        return found

    def _ingest(self, documents: list[Document], replace: bool, progress: Callable[[int, int], None] | None) -> IngestReport:
        pointer = self._pointer()
        if not replace:
            self._check_embedder(pointer)
        same_model = pointer.get("fingerprint") == self.fingerprint
        old: dict[str, tuple[str, list[float]]] = {}
        old_sources: dict[str, str] = {}
        old_meta: dict[str, Any] = {}
        live_ids: set[str] = set()
        if pointer.get("chunks"):
            chunks_col, docs_col = self._live(pointer)
            if same_model:
                old = self._vectors(chunks_col)
            live_ids = set(old) if same_model else set(_get_all(chunks_col, [])["ids"])
            new_ids = {d.doc_id for d in documents}
            got_docs = _get_all(docs_col, ["documents", "metadatas"])
            for i, text, m in zip(got_docs["ids"], got_docs["documents"], got_docs["metadatas"]):
                old_sources[i] = text
                old_meta[i] = json.loads(m["meta"])
                if not replace and i not in new_ids:
                    documents = documents + [parse_text(text, i, json.loads(m["meta"]))]
        chunks = chunk_documents(documents, self.settings.chunk_sentences)
        unchanged = (
            same_model and {c.id for c in chunks} == live_ids
            and all(old[c.id][0] == c.content_hash for c in chunks)
            and {d.doc_id: d.source for d in documents} == old_sources
            and {d.doc_id: d.meta for d in documents} == old_meta  # a new title or example questions
        )
        if unchanged:
            return IngestReport(len(documents), len(chunks), 0, len(chunks), 0, changed=False)
        vectors: dict[str, list[float]] = {}
        for found in (old, self._interrupted()):  # the live index, then what interrupted ingests embedded
            vectors |= {c.id: found[c.id][1] for c in chunks
                        if c.id not in vectors and c.id in found and found[c.id][0] == c.content_hash}
        to_embed = [c for c in chunks if c.id not in vectors]
        report = IngestReport(
            documents=len(documents),
            chunks=len(chunks),
            embedded=len(to_embed),
            reused=len(vectors),
            removed=len(live_ids - {c.id for c in chunks}),
            changed=True,
        )
        tag = uuid.uuid4().hex[:8]
        base = self.settings.collection
        chunks_col = self.client.create_collection(
            f"{base}__chunks_{tag}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None,
            metadata={"fingerprint": self.fingerprint},
        )
        add_chunks = lambda part: {  # noqa: E731 - the columns of a batch of chunks
            "ids": [c.id for c in part],
            "documents": [c.text for c in part],
            "metadatas": [c.metadata() for c in part],
            "embeddings": [vectors[c.id] for c in part],
        }
        self._add(chunks_col, [c for c in chunks if c.id in vectors], add_chunks)
        batch = self.settings.embedding_batch
        for start in range(0, len(to_embed), batch):
            part = to_embed[start : start + batch]
            for chunk, vector in zip(part, self.embeddings.embed_documents([c.text for c in part])):
                vectors[chunk.id] = vector
            self._add(chunks_col, part, add_chunks)  # written now: an interruption keeps it
            if progress:
                progress(len(part), len(to_embed))
        self._finish(chunks_col, tag, chunks, documents)
        return report

    def _finish(self, chunks_col: Any, tag: str, chunks: list[Chunk], documents: list[Document]) -> None:
        """Write the documents and the lexical index beside the new chunks, then flip the pointer."""
        self._drop_orphans(keep=frozenset({chunks_col.name}))  # now that what they held is written again
        docs_col = self.client.create_collection(f"{self.settings.collection}__docs_{tag}", embedding_function=None)
        LexicalIndex.build([c.text for c in chunks], [c.id for c in chunks]).save(self._lexical_dir(chunks_col.name))
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

    def _drop_orphans(self, keep: frozenset = frozenset()) -> None:
        """Remove collections left by an interrupted ingest (never the live ones, nor ``keep``)."""
        pointer = self._pointer()
        live = {pointer.get("chunks"), pointer.get("docs"), self.pointer_name} | keep
        prefix = f"{self.settings.collection}__"
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and name not in live:
                self._delete(name)
        self._prune_lexical(live)

    def _prune_lexical(self, keep: set) -> None:
        """Remove this collection's lexical index folders (and temporary ones) not in ``keep``;
        called under the ingest lock only."""
        base = self.settings.collection
        for pattern in (f"{base}__*", f".{base}__*"):
            for folder in self._lexical_dir("").glob(pattern):
                if folder.name not in keep:
                    shutil.rmtree(folder, ignore_errors=True)

    def _delete(self, name: str) -> None:
        shutil.rmtree(self._lexical_dir(name), ignore_errors=True)
        try:
            self.client.delete_collection(name)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
