from helpers import ARTICLE

from assistant.chunking import Chunk, chunk_document
from assistant.corpus import read_document


def test_chunk_ids_are_deterministic_and_pure():
    doc = read_document(ARTICLE)
    first, second = chunk_document(doc, 3), chunk_document(doc, 3)
    assert first == second
    assert [c.id for c in first][:3] == ["article:p0:s0", "article:p1:s0", "article:p1:s3"]
    assert len({c.id for c in first}) == len(first)


def test_chunks_carry_offsets_footnotes_and_references():
    doc = read_document(ARTICLE)
    chunk = next(c for c in chunk_document(doc, 3) if "Minimalbasis" in c.text)
    assert doc.source[chunk.start : chunk.end].startswith(chunk.spans[0].text[:30])
    assert 4 in chunk.footnotes and chunk.references[4].startswith("Manfred Zeidler")
    span = next(s for s in chunk.spans if "Minimalbasis" in s.text)
    assert span.footnotes == (4,)
    assert Chunk.from_metadata(chunk.id, chunk.text, chunk.metadata()) == chunk


def test_unmarked_sentences_are_backed_by_the_next_marker():
    doc = read_document(ARTICLE)
    chunk = next(c for c in chunk_document(doc, 1) if c.text.startswith("Zunächst wurde eine Zusammenarbeit mit Schweden"))
    assert chunk.footnotes == (1,)


def test_a_changed_sentence_changes_only_its_chunk_hash():
    doc = read_document(ARTICLE)
    before = {c.id: c.content_hash for c in chunk_document(doc, 3)}
    from assistant.corpus import parse_text

    edited = parse_text(doc.source.replace("Lipezk", "Lipezk (heute Lipezk)"), doc.doc_id, doc.meta)
    after = {c.id: c.content_hash for c in chunk_document(edited, 3)}
    assert [i for i in before if before[i] != after[i]] == ["article:p4:s0"]
