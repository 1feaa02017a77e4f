"""The team topology on loopback: one Chroma server, one OpenAI-compatible inference server, one
embeddings server (Infinity, serving the packaged EmbeddingGemma files), `assistant ingest` through
them, and two `assistant serve` processes sharing them; one question through each app (README
"Running for a team")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ARTICLE, free_port, wait_for_http

from assistant.embeddings import cosine, load_embeddings
from assistant.eval.servers import start_chroma, start_infinity


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_two_apps_share_one_chroma_server_one_inference_server_and_one_embeddings_server(
    tmp_path, real_embeddings, settings_factory
):
    from gradio_client import Client

    from assistant import models

    settings = settings_factory()
    gguf = models.require("qwen2.5-coder-0.5b-instruct", settings.cache_dir)
    chroma_port, llm_port, embed_port = free_port(), free_port(), free_port()
    embed_url = f"http://127.0.0.1:{embed_port}"
    procs = [
        start_chroma(tmp_path / "chroma", chroma_port, tmp_path / "chroma.log"),
        _start([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port",
                str(llm_port), "--n_ctx", "4096", "--model_alias", "qwen-small"], tmp_path / "llm.log"),
    ]
    try:
        gemma = models.require("embeddinggemma-300m", settings.cache_dir)
        procs.append(start_infinity(gemma, "embeddinggemma-300m", embed_port, tmp_path / "embed.log"))
        served = load_embeddings("openai/embeddinggemma-300m", settings.cache_dir, embed_url)
        texts = ["Für den Aufbau der Luftwaffe wurden Piloten in Lipezk ausgebildet.", "Kama lag bei Kasan."]
        pairs = [*zip(served.embed_documents(texts), real_embeddings.embed_documents(texts)),
                 (served.embed_query("Wo lag Kama?"), real_embeddings.embed_query("Wo lag Kama?"))]
        assert all(cosine(a, b) >= 0.99 for a, b in pairs), [cosine(a, b) for a, b in pairs]

        chroma_url = f"http://127.0.0.1:{chroma_port}"
        remote = dict(os.environ) | {  # already isolated by conftest.isolate
            "ASSISTANT_CHROMA_URL": chroma_url,
            "ASSISTANT_EMBEDDING_MODEL": "openai/embeddinggemma-300m",
            "ASSISTANT_EMBEDDINGS_URL": embed_url,
            "HF_HUB_OFFLINE": "1",
        }
        ingest = subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(ARTICLE)], capture_output=True,
                                text=True, env=remote | {"ASSISTANT_HOME": str(tmp_path / "ingest")}, timeout=300)
        assert ingest.returncode == 0 and "11 embedded" in ingest.stdout, ingest.stderr[-2000:]
        wait_for_http(f"http://127.0.0.1:{llm_port}/v1/models", procs[1], 120, tmp_path / "llm.log")

        urls = []
        for n in (1, 2):
            port = free_port()
            env = remote | {
                "ASSISTANT_HOME": str(tmp_path / f"app{n}"),  # empty: the index comes only from the server
                "ASSISTANT_BACKEND": "openai/qwen-small",
                "ASSISTANT_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
                "ASSISTANT_REQUEST_TIMEOUT": "240",
                "ASSISTANT_PORT": str(port),
            }
            if n == 2:  # the second app embeds questions in process: same model, so the same index
                env["ASSISTANT_EMBEDDING_MODEL"] = "embeddinggemma-300m"
            procs.append(_start([sys.executable, "-m", "assistant.cli", "serve"], tmp_path / f"app{n}.log", env))
            urls.append(f"http://127.0.0.1:{port}/")
        for n, url in enumerate(urls, 1):
            wait_for_http(url, procs[-3 + n], 240, tmp_path / f"app{n}.log")

        for n, url in enumerate(urls, 1):
            client = Client(url, verbose=False)
            for _ in range(120):  # a question during the start-up gets a quick answer from keywords: ask again
                messages, _ = client.predict("Wo wurden die deutschen Piloten ausgebildet?", [], "openai/qwen-small", 4,
                                             False, "", api_name="/ask")
                text = " ".join(str(m.get("content")) for m in messages)
                if "Schnellantwort" not in text:
                    break
                time.sleep(2)
            titles = [(m.get("metadata") or {}).get("title") or "" for m in messages]
            assert "Lipezk" in text and any(t.startswith("Quellen") for t in titles), (n, messages)
            assert "Hinweis" not in titles, f"app {n} fell back instead of using the inference server: {messages}"
        answered = (tmp_path / "llm.log").read_text()
        assert answered.count("POST /v1/chat/completions") >= 2, answered[-2000:]
        for n in (1, 2):  # no local Chroma index; the BM25 index built from the server's collection
            home = tmp_path / f"app{n}"
            assert not any(home.glob("chroma*")), "the apps must not build local indexes"
            assert [p.name for p in (home / "lexical").iterdir()] == [p.name for p in (tmp_path / "ingest" / "lexical").iterdir()]
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
