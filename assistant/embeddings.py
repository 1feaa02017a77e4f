"""Embedders, chosen like chat backends by ``ASSISTANT_EMBEDDING_MODEL``:

- ``local`` or a model name / path (default ``embeddinggemma-300m``): sentence-transformers in
  this process;
- ``openai/<model>``: any OpenAI-compatible ``/v1/embeddings`` server at
  ``ASSISTANT_EMBEDDINGS_URL`` (Infinity, vLLM, TEI, Ollama), through LangChain's
  ``OpenAIEmbeddings``, in batches, with the client's retries and exponential backoff.

A server applies no retrieval prompts, so they are added here: those the packaged model's entry
records (EmbeddingGemma's "task: search result | query: …" and "title: none | text: …", as in its
sentence-transformers configuration), or ``ASSISTANT_EMBEDDING_QUERY_PROMPT`` /
``ASSISTANT_EMBEDDING_DOCUMENT_PROMPT``. A server's key is ``EMBEDDINGS_API_KEY`` (environment only;
never the chat backend's ``OPENAI_API_KEY``).

An index records :func:`embedder_id`, the model its vectors come from whatever serves it: the
packaged model in process and the same files behind a server share it, and may share an index.
"""

from __future__ import annotations

import os
import threading
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from . import AssistantError, models
from .settings import Settings

SERVER = "openai/"
# A question's few texts (the question, its unfamiliar words, a claim's words) are embedded on one
# thread each, and torch idles on one between calls; a batch (ingest, the corpus's sentences at
# start-up) uses every core. On 2 cores beside the page's browser and the model, two threads per
# question waited on each other: the server found a German question's sources in 0.17-0.27 s
# against 0.09 s in a bare process, 0.12-0.16 s on one thread (`make bench-chat`; README). torch's
# thread count belongs to the thread that sets it (and becomes the default of threads started
# later), so each call sets its own. Not tuned: more texts than a question embeds at once.
FEW_TEXTS = 8
DEFAULT_EMBEDDING = Settings.model_fields["embedding_model"].default


class EmbeddingError(AssistantError, RuntimeError):
    """The embedder cannot be used; the message says what to do."""


def embedder_id(spec: str) -> str:
    """The model behind an embedder spec, the same whether it runs here or behind a server.

    >>> [embedder_id(s) for s in ["openai/embeddinggemma-300m", "local", "local/x", "embeddinggemma-300m"]]
    ['embeddinggemma-300m', 'embeddinggemma-300m', 'x', 'embeddinggemma-300m']
    """
    if spec.startswith(SERVER):
        return spec[len(SERVER):]
    if spec == "local":
        return DEFAULT_EMBEDDING
    return spec.removeprefix("local/")


def cosine(u: Any, v: Any) -> float:
    """Cosine of two embeddings: the vectors are normalised when encoded, so their dot product.

    >>> cosine([0.6, 0.8], [1.0, 0.0])
    0.6
    """
    return float(np.dot(u, v))


class CachedEmbeddings(Embeddings):
    """LangChain ``Embeddings`` with a query/document distinction, remembering recent texts."""

    def __init__(self, name: str, cache_size: int = 4096) -> None:
        self.name = name
        self._cache: dict[tuple[str, str], Any] = {}
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def _compute(self, kind: str, texts: list[str]) -> Any:
        """Unit-length vectors for ``texts`` as ``kind`` ("query" or "document")."""
        raise NotImplementedError

    def _encode(self, kind: str, texts: list[str]) -> list[list[float]]:
        with self._cache_lock:
            found = {t: self._cache[(kind, t)] for t in texts if (kind, t) in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            computed = dict(zip(missing, self._compute(kind, missing)))
            found |= computed
            with self._cache_lock:
                if len(self._cache) + len(missing) > self._cache_size:
                    self._cache.clear()
                self._cache.update({(kind, t): v for t, v in computed.items()})
        return [found[t].tolist() for t in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode("document", texts) if texts else []

    def remember(self, kind: str, texts: list[str], vectors: Any) -> None:
        """Take vectors computed earlier (by this embedder) for ``texts`` into the cache."""
        with self._cache_lock:
            self._cache.update({(kind, t): v for t, v in zip(texts, vectors)})

    def embed_query(self, text: str) -> list[float]:
        return self._encode("query", [text])[0]


class SentenceTransformerEmbeddings(CachedEmbeddings):
    """A sentence-transformers model in this process, with its own retrieval prompts."""

    def __init__(self, model: Any, name: str, batch_size: int = 16) -> None:
        super().__init__(name)
        self.model = model
        self.batch_size = batch_size
        # A few texts take one core, so as many such passes as there are cores run side by side
        # (an English question's words beside the question itself); a batch takes them all.
        self._cores = _torch_cores()  # before any call here sets one thread
        self._slots = threading.Semaphore(self._cores)
        self._batch = threading.Lock()

    def _compute(self, kind: str, texts: list[str]) -> Any:
        import torch

        encode = self.model.encode_query if kind == "query" else self.model.encode_document
        threads = self._cores if len(texts) > FEW_TEXTS else 1
        with self._batch if threads > 1 else nullcontext():
            for _ in range(threads):
                self._slots.acquire()
            torch.set_num_threads(threads)  # for this thread's passes
            try:
                return encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            finally:  # idle on one thread: waking all of them again cost the next question's model time
                torch.set_num_threads(1)
                for _ in range(threads):
                    self._slots.release()


@lru_cache(maxsize=1)
def _torch_cores() -> int:
    """The threads torch would use by itself (asked once, before any call here changes them)."""
    import torch

    return torch.get_num_threads()


class ServerEmbeddings(CachedEmbeddings):
    """An OpenAI-compatible ``/v1/embeddings`` server; prompts added here, vectors normalised here."""

    def __init__(self, model: str, url: str, prompts: dict[str, str], batch_size: int, timeout: float,
                 retries: int = 5) -> None:
        super().__init__(f"{SERVER}{model}")
        from langchain_openai import OpenAIEmbeddings

        self.url, self.prompts = url, prompts
        self.client = OpenAIEmbeddings(
            model=model, base_url=url, api_key=os.environ.get("EMBEDDINGS_API_KEY") or "not-needed",
            check_embedding_ctx_length=False,  # send text, not OpenAI's tiktoken ids (no download, any server)
            chunk_size=batch_size, max_retries=retries, timeout=timeout,
        )

    def _compute(self, kind: str, texts: list[str]) -> Any:
        prefix = self.prompts.get(kind, "")
        try:
            vectors = np.asarray(self.client.embed_documents([prefix + t for t in texts]), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - connection, HTTP and payload errors alike
            raise EmbeddingError(
                f"embeddings server {self.url} failed ({type(exc).__name__}: {str(exc)[:160]}); start it, "
                "fix ASSISTANT_EMBEDDINGS_URL, or set ASSISTANT_EMBEDDING_MODEL to a local model"
            ) from None
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def resolve_embedding_model(name: str, cache_dir: Path) -> str:
    """A packaged model name becomes its verified cache path; paths and hub ids pass through."""
    if name in models.PACKAGED_MODELS:
        return str(models.require(name, cache_dir))
    if os.path.sep in name and not Path(name).exists():
        raise models.ModelError(f"embedding model path {name} does not exist; fix ASSISTANT_EMBEDDING_MODEL")
    return name


def server_prompts(model: str, query: str | None, document: str | None) -> dict[str, str]:
    """The retrieval prompts to add for ``model`` behind a server: the given ones, else those the
    packaged model's entry records, else none.

    >>> server_prompts("embeddinggemma-300m", None, "t: ")
    {'query': 'task: search result | query: ', 'document': 't: '}
    """
    spec = models.PACKAGED_MODELS.get(model)
    given = {"query": query, "document": document}
    return dict(spec.prompts if spec else ()) | {kind: value for kind, value in given.items() if value is not None}


@lru_cache(maxsize=4)
def load_embeddings(spec: str, cache_dir: Path, url: str | None = None, timeout: float = 60.0,
                    batch_size: int = 32, query_prompt: str | None = None,
                    document_prompt: str | None = None) -> CachedEmbeddings:
    """The embedder for ``spec``, built once per process."""
    if spec.startswith(SERVER):
        if not url:
            raise EmbeddingError(f"{spec} needs ASSISTANT_EMBEDDINGS_URL (e.g. http://127.0.0.1:7997 for Infinity)")
        model = embedder_id(spec)
        return ServerEmbeddings(model, url, server_prompts(model, query_prompt, document_prompt), batch_size, timeout)
    name = embedder_id(spec)
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
    return SentenceTransformerEmbeddings(model, name, batch_size)


def embeddings_for(settings: Settings) -> CachedEmbeddings:
    """The embedder ``settings`` name."""
    return load_embeddings(settings.embedding_model, settings.cache_dir, settings.embeddings_url,
                           settings.request_timeout, settings.embedding_batch,
                           settings.embedding_query_prompt, settings.embedding_document_prompt)
