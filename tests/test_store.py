"""Ingest is idempotent, rebuilds exactly what changed, and never exposes a half-built index."""

from __future__ import annotations

import os

import pytest
from helpers import ARTICLE, free_port

from assistant.corpus import parse_text, read_document
from assistant.retrieval import HybridRetriever
from assistant.store import Store, StoreError


def test_ingest_is_idempotent_and_incremental(settings_factory, fake_embeddings):
    store = Store(settings_factory(), fake_embeddings)
    doc = read_document(ARTICLE)
    first = store.ingest([doc])
    assert first.changed and first.embedded == first.chunks == 11
    again = store.ingest([doc])
    assert not again.changed and again.embedded == 0 and fake_embeddings.calls == 11
    edited = parse_text(doc.source.replace("Lipezk", "Lipezk am Woronesch"), doc.doc_id, doc.meta)
    third = store.ingest([edited])
    assert third.changed and third.embedded == 1 and third.reused == 10
    assert any("Woronesch" in c.text for c in store.chunks())


def test_other_documents_are_kept_and_replace_drops_them(settings_factory, fake_embeddings, tmp_path):
    store = Store(settings_factory(), fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    extra = tmp_path / "notiz.md"
    extra.write_text("# Notiz\n\nKama liegt an der Kama. Das ist ein Fluss.\n", encoding="utf-8")
    report = store.ingest([read_document(extra)])
    assert report.documents == 2 and report.embedded == 1
    assert {c.doc_id for c in store.chunks()} == {"article", "notiz"}
    store.ingest([read_document(extra)], replace=True)
    assert {c.doc_id for c in store.chunks()} == {"notiz"}


def test_a_changed_chunk_setting_rebuilds_everything(settings_factory, fake_embeddings):
    Store(settings_factory(chunk_sentences=3), fake_embeddings).ingest([read_document(ARTICLE)])
    report = Store(settings_factory(chunk_sentences=1), fake_embeddings).ingest([])
    assert report.changed and report.chunks == 29 and report.reused == 0


def test_interrupted_ingest_leaves_the_old_index_answering(settings_factory, fake_embeddings):
    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    doc = read_document(ARTICLE)
    store.ingest([doc])
    before = [c.id for c in store.chunks()]

    class Dies(type(fake_embeddings)):
        def embed_documents(self, texts):
            raise KeyboardInterrupt

    broken = Store(settings, Dies())
    with pytest.raises(KeyboardInterrupt):
        broken.ingest([parse_text(doc.source.replace("Lipezk", "Lipezk!"), doc.doc_id, doc.meta)])
    assert [c.id for c in Store(settings, fake_embeddings).chunks()] == before

    class DiesWhileWriting(Store):
        def _finish(self, chunks_col, tag, chunks, documents):
            self.client.create_collection("assistant__chunks_dead", embedding_function=None)
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        DiesWhileWriting(settings, fake_embeddings).ingest([parse_text(doc.source + "\n\nNeu.", doc.doc_id, doc.meta)])
    assert [c.id for c in store.chunks()] == before
    store.ingest([parse_text(doc.source + "\n\nNeu hier.", doc.doc_id, doc.meta)])
    names = {c if isinstance(c, str) else c.name for c in store.client.list_collections()}
    assert "assistant__chunks_dead" not in names and len(names) == 3


def test_missing_index_and_unwritable_home(settings_factory, fake_embeddings, tmp_path):
    with pytest.raises(StoreError, match="assistant ingest"):
        Store(settings_factory(), fake_embeddings).chunks()
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions; use a file where a folder must be
        locked = tmp_path / "afile"
        locked.write_text("x")
    with pytest.raises(StoreError, match="not writable"):
        Store(settings_factory(home=locked), fake_embeddings)


def test_deleted_index_gives_a_clear_error_and_reingest_recovers(settings_factory, fake_embeddings):
    import shutil

    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    shutil.rmtree(settings.chroma_dir)
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # as a new process would see it
    with pytest.raises(StoreError, match="assistant ingest"):
        Store(settings, fake_embeddings).chunks()
    fresh = Store(settings, fake_embeddings)
    fresh.ingest([read_document(ARTICLE)])
    assert len(fresh.chunks()) == 11


def test_unreachable_chroma_server(settings_factory, fake_embeddings):
    with pytest.raises(StoreError, match="unreachable.*chroma run"):
        Store(settings_factory(chroma_url=f"http://127.0.0.1:{free_port()}"), fake_embeddings)


def test_hybrid_retriever_is_a_langchain_retriever(settings_factory, fake_embeddings):
    store = Store(settings_factory(), fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    docs = HybridRetriever(store=store, k=2).invoke("Ossietzky Weltbühne-Prozess Haftstrafe")
    assert len(docs) == 2 and "Ossietzky" in docs[0].page_content
    assert {"chunk_id", "score", "dense_score", "lexical_score", "footnotes"} <= set(docs[0].metadata)


def test_doc_filter_restricts_to_one_document(settings_factory, fake_embeddings, tmp_path):
    store = Store(settings_factory(), fake_embeddings)
    extra = tmp_path / "kama.txt"
    extra.write_text("Kama\n\nDie Panzerschule Kama lag bei Kasan.\n", encoding="utf-8")
    store.ingest([read_document(ARTICLE), read_document(extra)])
    docs = HybridRetriever(store=store, k=3, doc_filter="kama").invoke("Panzerschule Kama")
    assert {d.metadata["doc_id"] for d in docs} == {"kama"}




def test_index_deleted_under_a_running_retriever(settings_factory, fake_embeddings):
    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    retriever = HybridRetriever(store=store)
    assert retriever.search("Lipezk")
    for collection in store.client.list_collections():
        store.client.delete_collection(collection if isinstance(collection, str) else collection.name)
    with pytest.raises(StoreError, match="assistant ingest"):
        retriever.search("Lipezk")
    store.ingest([read_document(ARTICLE)])
    retriever.refresh()
    assert retriever.search("Lipezk")


def test_second_ingest_while_one_runs_fails_clearly_and_keeps_the_index(settings_factory, fake_embeddings):
    import fcntl

    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    with (settings.home / "ingest.lock").open("a+") as held:  # what a running `assistant ingest` holds
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        with pytest.raises(StoreError, match=r"another ingest \(pid 4242\).*assistant ingest"):
            store.ingest([parse_text(read_document(ARTICLE).source + "\n\nNeu hier.", "article")])
        assert len(HybridRetriever(store=store).search("Lipezk")) == 4  # reading is not blocked
    assert store.ingest([parse_text(read_document(ARTICLE).source + "\n\nNeu hier.", "article")]).embedded == 1


def test_locked_chroma_database_still_answers(settings_factory, fake_embeddings):
    """Another program holding an exclusive SQLite lock on the index does not stop searches."""
    import sqlite3

    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    other = sqlite3.connect(settings.chroma_dir / "chroma.sqlite3", timeout=0, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert HybridRetriever(store=store).search("Lipezk")
    finally:
        other.rollback()
        other.close()


@pytest.mark.slow
def test_more_documents_than_one_chroma_batch(settings_factory, fake_embeddings):
    """Chroma rejects adds above its max batch size (5,461 here); ingest splits them."""
    store = Store(settings_factory(), fake_embeddings)
    many = [parse_text(f"Notiz {i}\n\nDie Notiz Nummer {i} nennt Lipezk.", f"n{i}") for i in range(6000)]
    assert store.ingest(many).chunks == 6000
    assert len(store.documents()) == 6000 and len(store.chunks()) == 6000  # read back in pages
    many[0] = parse_text("Notiz 0\n\nDie Notiz nennt jetzt Kama.", "n0")
    report = store.ingest(many)
    assert (report.embedded, report.reused) == (1, 5999)
