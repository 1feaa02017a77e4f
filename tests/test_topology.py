"""The team topology on loopback: one Chroma server, one OpenAI-compatible inference server, two
`assistant serve` processes sharing both; one question through each app (README "Running for a team")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ARTICLE, free_port, wait_for_http

from assistant.corpus import read_document


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_two_apps_share_one_chroma_server_and_one_inference_server(tmp_path, real_embeddings, settings_factory):
    from gradio_client import Client

    from assistant import models
    from assistant.store import Store

    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert chroma, "the chromadb package provides the `chroma` command"
    settings = settings_factory()
    gguf = models.require("qwen2.5-coder-0.5b-instruct", settings.cache_dir)
    chroma_port, llm_port = free_port(), free_port()
    procs = [
        _start([chroma, "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1", "--port", str(chroma_port)],
               tmp_path / "chroma.log"),
        _start([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port",
                str(llm_port), "--n_ctx", "4096", "--model_alias", "qwen-small"], tmp_path / "llm.log"),
    ]
    try:
        wait_for_http(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat", procs[0], 60, tmp_path / "chroma.log")
        chroma_url = f"http://127.0.0.1:{chroma_port}"
        # Ingest once into the shared store (what `ASSISTANT_CHROMA_URL=… assistant ingest` does).
        Store(settings_factory(chroma_url=chroma_url), real_embeddings).ingest([read_document(ARTICLE)])
        wait_for_http(f"http://127.0.0.1:{llm_port}/v1/models", procs[1], 120, tmp_path / "llm.log")

        urls = []
        for n in (1, 2):
            port = free_port()
            env = dict(os.environ) | {  # already isolated by conftest.isolate
                "ASSISTANT_HOME": str(tmp_path / f"app{n}"),  # empty: the index comes only from the server
                "ASSISTANT_CHROMA_URL": chroma_url,
                "ASSISTANT_BACKEND": "openai/qwen-small",
                "ASSISTANT_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
                "ASSISTANT_REQUEST_TIMEOUT": "240",
                "ASSISTANT_PORT": str(port),
                "HF_HUB_OFFLINE": "1",
            }
            procs.append(_start([sys.executable, "-m", "assistant.cli", "serve"], tmp_path / f"app{n}.log", env))
            urls.append(f"http://127.0.0.1:{port}/")
        for n, url in enumerate(urls, 1):
            wait_for_http(url, procs[-3 + n], 240, tmp_path / f"app{n}.log")

        for n, url in enumerate(urls, 1):
            client = Client(url, verbose=False)
            messages, _ = client.predict("Wo wurden die deutschen Piloten ausgebildet?", [], "openai/qwen-small", 4,
                                         False, "", api_name="/ask")
            text = " ".join(str(m.get("content")) for m in messages)
            titles = [(m.get("metadata") or {}).get("title") or "" for m in messages]
            assert "Lipezk" in text and any(t.startswith("Quellen") for t in titles), (n, messages)
            assert "Hinweis" not in text, f"app {n} fell back instead of using the inference server: {messages}"
        served = (tmp_path / "llm.log").read_text()
        assert served.count("POST /v1/chat/completions") >= 2, served[-2000:]
        assert not any((tmp_path / f"app{n}").glob("chroma*")), "the apps must not build local indexes"
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
