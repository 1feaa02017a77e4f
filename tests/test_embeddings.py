"""Embedders: an index never mixes two of them, an interrupted ingest resumes where it stopped, and
an OpenAI-compatible server gets the model's retrieval prompts and batches (fake server: logic only;
tests/test_topology.py runs a real one)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from helpers import ARTICLE, BagOfWordsEmbeddings

from assistant.corpus import parse_text, read_document
from assistant.embeddings import EmbeddingError, ServerEmbeddings, load_embeddings, server_prompts
from assistant.store import Store, StoreError


def test_an_index_is_never_mixed_with_another_embedder(settings_factory, fake_embeddings):
    question = "Wo wurden Piloten ausgebildet?"
    Store(settings_factory(), fake_embeddings).ingest([read_document(ARTICLE)])  # in process: embeddinggemma-300m
    served = Store(settings_factory(embedding_model="openai/embeddinggemma-300m"), fake_embeddings)
    assert served.dense_search(question, 3)  # the same model behind a server shares the index
    for other in (Store(settings_factory(embedding_model="openai/another-model"), fake_embeddings),
                  Store(settings_factory(embedding_document_prompt="passage: "), fake_embeddings)):
        with pytest.raises(StoreError, match=r"built with the embedder embeddinggemma-300m.*assistant ingest --replace"):
            other.dense_search(question, 3)
        with pytest.raises(StoreError, match="--replace"):
            other.ingest([read_document(ARTICLE)])
    report = other.ingest([read_document(ARTICLE)], replace=True)
    assert report.embedded == report.chunks and other.dense_search(question, 3)
    with pytest.raises(StoreError, match="--replace"):
        served.dense_search(question, 3)


def test_an_interrupted_ingest_resumes_where_it_stopped(settings_factory):
    settings = settings_factory(embedding_batch=2)
    doc = read_document(ARTICLE)
    Store(settings, BagOfWordsEmbeddings()).ingest([doc])
    edited = parse_text(doc.source.replace(".", " heute.", 200), doc.doc_id, doc.meta)  # every chunk changed

    class DiesAfterTwoBatches(BagOfWordsEmbeddings):
        def embed_documents(self, texts):
            if self.calls >= 4:
                raise KeyboardInterrupt
            return super().embed_documents(texts)

    with pytest.raises(KeyboardInterrupt):
        Store(settings, DiesAfterTwoBatches()).ingest([edited])
    seen: list[tuple[int, int]] = []
    resumed = BagOfWordsEmbeddings()
    report = Store(settings, resumed).ingest([edited], progress=lambda n, total: seen.append((n, total)))
    assert report.reused == 5 and report.embedded == report.chunks - 5 == resumed.calls  # 1 unchanged + 4 embedded
    assert seen[-1][1] == report.embedded and sum(n for n, _ in seen) == report.embedded
    assert any("heute" in c.text for c in Store(settings, resumed).chunks())


class _Server(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        data = [{"object": "embedding", "index": i, "embedding": [3.0, 4.0] if "query" in t else [1.0, 0.0]}
                for i, t in enumerate(body["input"])]
        payload = json.dumps({"object": "list", "data": data, "model": body["model"],
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_a_server_gets_prompts_and_batches_and_vectors_come_back_normalised(settings_factory):
    server = HTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        embeddings = ServerEmbeddings("m", url, {"query": "query: ", "document": "text: "}, batch_size=2, timeout=5)
        assert embeddings.embed_query("Wo?") == pytest.approx([0.6, 0.8])
        assert embeddings.embed_documents(["a", "b", "c"]) == [[1.0, 0.0]] * 3
        inputs = [r["input"] for r in _Server.requests]
        assert inputs == [["query: Wo?"], ["text: a", "text: b"], ["text: c"]]
    finally:
        server.shutdown()


def test_server_prompts_come_from_the_packaged_model_or_the_settings(settings_factory):
    assert server_prompts("embeddinggemma-300m", None, None) == {
        "query": "task: search result | query: ", "document": "title: none | text: "}
    assert server_prompts("my-model", "q: ", None) == {"query": "q: "}
    with pytest.raises(EmbeddingError, match="ASSISTANT_EMBEDDINGS_URL"):
        load_embeddings("openai/my-model", settings_factory().cache_dir)
