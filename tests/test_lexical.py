"""The BM25 index is built at ingest, saved beside the collection it describes, flips with it, and
is rebuilt where it is missing or damaged (an app reading a Chroma server another machine filled)."""

from __future__ import annotations

from helpers import ARTICLE, one_chunk

from assistant.corpus import parse_text, read_document
from assistant.lexical import LexicalIndex, tokenize
from assistant.retrieval import HybridRetriever
from assistant.store import Store


def _folders(settings) -> list[str]:
    return sorted(p.name for p in (settings.home / "lexical").iterdir())


def test_ingest_saves_the_index_and_swaps_it_with_the_collection(settings_factory, fake_embeddings):
    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    doc = read_document(ARTICLE)
    store.ingest([doc])
    first = _folders(settings)
    assert first == [store._pointer()["chunks"]]
    store.ingest([parse_text(doc.source.replace("Lipezk", "Lipezk am Woronesch"), doc.doc_id, doc.meta)])
    second = _folders(settings)
    assert second == [store._pointer()["chunks"]] and second != first
    _, index = store.snapshot()
    assert "woronesch" in tokenize("Woronesch") and index.search("Woronesch", 1)[0][0] in {c.id for c in store.chunks()}


def test_a_missing_or_damaged_index_is_rebuilt_from_the_collection(settings_factory, fake_embeddings):
    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    folder = settings.home / "lexical" / store._pointer()["chunks"]
    expected = store.snapshot()[1].search("Wo wurden die Piloten ausgebildet?", 3)
    (folder / "ids.json").write_text('{"word_rules": "older", "ids": []}', encoding="utf-8")  # stale and damaged
    assert store.snapshot()[1].search("Wo wurden die Piloten ausgebildet?", 3) == expected
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()  # missing, as on a machine that did not ingest
    retriever = HybridRetriever(store=store)
    assert retriever.search("Wo wurden die Piloten ausgebildet?", k=3)
    assert LexicalIndex.load(folder).ids == [c.id for c in retriever.chunks]


def test_a_name_in_the_genitive_ranks_the_sentence_that_names_it_first():
    from assistant.retrieval import rank_sentences

    sentences = ["Außerdem boten sie Waffen an.", "Der Chefredakteur Carl von Ossietzky wurde verurteilt."]
    chunk, _ = one_chunk(sentences)
    best = rank_sentences("Was war Ossietzkys Funktion?", [chunk], None)[0]
    assert best[2].text == sentences[1] and best[0] > 0, best
