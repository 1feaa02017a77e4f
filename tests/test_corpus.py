from pathlib import Path

import pytest
from helpers import ARTICLE

from assistant.corpus import CorpusError, load_documents, parse_text, read_document, split_sentences


@pytest.fixture(scope="module")
def article():
    return read_document(ARTICLE)


def test_article_structure(article):
    assert article.doc_id == "article"
    assert article.title == "Geheime Zusammenarbeit zwischen Roter Armee und Reichswehr"
    assert len(article.paragraphs) == 6
    assert sum(len(p.sentences) for p in article.paragraphs) == 29
    assert sorted(article.references) == list(range(1, 10))


def test_debris_and_headings_are_not_content(article):
    texts = [s.text for p in article.paragraphs for s in p.sentences]
    assert not any(t in ("Bearbeiten", "Literatur", "Einzelnachweise") for t in texts)
    assert not any("Bearbeiten" in t for t in texts)


def test_reference_backlink_letters_are_stripped(article):
    assert article.references[7].startswith("Olaf Groehler: Selbstmörderische Allianz")
    assert article.references[4].startswith("Manfred Zeidler: Reichswehr und Rote Armee 1920–1933")


def test_offsets_point_into_the_source(article):
    for para in article.paragraphs:
        for s in para.sentences:
            raw = article.source[s.start : s.end]
            assert raw.replace("[", "").startswith(s.text[:20].replace("[", ""))


def test_footnotes_attach_to_the_sentence_they_follow(article):
    sentence = next(s for p in article.paragraphs for s in p.sentences if "Minimalbasis" in s.text)
    assert sentence.footnotes == (4,)
    assert "[4]" not in sentence.text
    assert article.source[sentence.start : sentence.end].endswith("anlief.[4]")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Der am 24. April 1926 geschlossene Vertrag galt. Danach nicht.", 2),
        ("Offiziere (z. B. Heinz Guderian) wurden Befehlshaber. Ende.", 2),
        ("Siehe S. 132 und Bd. 16 dort. Ende.", 2),
        ("Im Vertrag von Rapallo 1922. Der Vertrag selbst.", 2),
        ("Er kam an.[4] 1926 enthüllte der Guardian es.[5]", 2),
    ],
)
def test_german_sentence_splitting(text, expected):
    assert len(split_sentences(text)) == expected


def test_markdown_and_html(tmp_path: Path):
    (tmp_path / "a.md").write_text("# Titel A\n\nErster Satz hier. Zweiter Satz.\n\n## Abschnitt\n\nDritter Satz.\n")
    (tmp_path / "b.html").write_text("<html><head><title>Titel B</title></head><body><p>Ein Absatz &amp; mehr.</p><script>x()</script></body></html>")
    docs = load_documents([tmp_path])
    assert [d.title for d in docs] == ["Titel A", "Titel B"]
    assert docs[0].paragraphs[1].heading == "Abschnitt"
    assert docs[1].paragraphs[0].sentences[0].text == "Ein Absatz & mehr."


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\xff\xfe\x00\x01binary", "binary"),
        ("Titel\n\nÜber die Größe.".encode("latin-1"), "not UTF-8"),
        (b"", "empty"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        read_document(path)


def test_missing_and_unsupported_paths(tmp_path: Path):
    with pytest.raises(CorpusError, match="no such file"):
        read_document(tmp_path / "nope.txt")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(CorpusError, match="unsupported"):
        read_document(tmp_path / "x.pdf")


def test_parse_text_without_paragraphs():
    with pytest.raises(CorpusError, match="no paragraphs"):
        parse_text("Nur ein Titel", "t")
