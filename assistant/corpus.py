"""Parse source documents into title, paragraphs, sentences, footnotes and references.

The parser keeps character offsets into the original text so that every sentence can be
highlighted in the source later. Footnote markers like ``[4]`` are attached to the sentence they
follow and removed from its clean text; the "Einzelnachweise" list becomes ``{4: "Berger …"}``.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from . import AssistantError

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")

# Lines that are web-page debris rather than content.
DEBRIS = {"bearbeiten", "quelltext bearbeiten", "edit", "[edit]"}
# Headings that introduce the reference list.
_REFERENCE_HEADINGS = {"einzelnachweise", "anmerkungen", "references", "notes", "quellen", "fußnoten"}
MARKER = re.compile(r"\[(\d{1,3})\]")  # a footnote marker [n]: in the article, and in answers
_REFERENCE_LINE = re.compile(r"^\s*(\d{1,3})\.\s+(?:(?:[a-z]\s){1,8})?(.+?)\s*$")
# Abbreviations that end with a period but do not end a sentence (lower-cased, without the dot).
_ABBREVIATIONS = {
    "z", "b", "s", "bd", "vgl", "ca", "bzw", "usw", "etc", "dr", "prof", "nr", "hrsg", "jh",
    "jhd", "u", "a", "d", "h", "o", "v", "st", "sog", "gest", "geb", "mio", "mrd", "abb",
    "aufl", "ebd", "f", "ff", "inkl", "evtl", "ggf", "max", "min", "mr", "mrs", "ms", "no",
    "vol", "pp", "p", "e", "i", "vs", "jr", "sr", "gen", "lt", "oberst", "kap", "art", "abs",
}
_MONTHS = (
    "januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september",
    "oktober", "november", "dezember", "jänner",
)
# A candidate sentence end: terminal punctuation, optional closing quotes and footnote markers.
_SENTENCE_END = re.compile(r"[.!?…]+[“”\"'»«)]*(?:\[\d{1,3}\])*(?=\s+|$)")


class CorpusError(AssistantError, ValueError):
    """A document cannot be read or parsed; the message says what to do."""


@dataclass(frozen=True)
class Sentence:
    """One sentence: clean text (markers removed) and its span in the source text."""

    index: int
    text: str
    start: int
    end: int
    footnotes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Paragraph:
    index: int
    start: int
    end: int
    sentences: tuple[Sentence, ...]
    heading: str = ""


@dataclass(frozen=True)
class Document:
    """A parsed document. ``source`` is the exact text the offsets point into."""

    doc_id: str
    title: str
    source: str
    paragraphs: tuple[Paragraph, ...]
    references: dict[int, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def backing_footnotes(self, paragraph: Paragraph, sentence: Sentence) -> tuple[int, ...]:
        """Footnotes that back a sentence, by Wikipedia's convention.

        A marker covers its own sentence and the unmarked sentences before it in the same
        paragraph, so an unmarked sentence is backed by the next marker that follows it.

        >>> doc = parse_text("T\\n\\nEins ist so. Zwei ist so.[3] Drei.", "d")
        >>> p = doc.paragraphs[0]
        >>> [doc.backing_footnotes(p, s) for s in p.sentences]
        [(3,), (3,), ()]
        """
        if sentence.footnotes:
            return sentence.footnotes
        for later in paragraph.sentences[sentence.index + 1 :]:
            if later.footnotes:
                return later.footnotes
        return ()


def slugify(name: str) -> str:
    """A lower-case id safe for chunk ids.

    >>> slugify("Über Neustädter Brücken (1891).txt")
    'uber-neustadter-brucken-1891-txt'
    """
    table = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss", "Ä": "a", "Ö": "o", "Ü": "u"})
    slug = re.sub(r"[^a-z0-9]+", "-", name.translate(table).lower()).strip("-")
    return slug or "doc"


def split_sentences(text: str, offset: int = 0) -> list[Sentence]:
    """Split German (or English) prose into sentences, keeping source offsets.

    Abbreviations ("z. B.", "S. 57", "Bd. 3") and ordinals ("3. Mai") do not end a sentence.

    >>> [s.text for s in split_sentences("Am 3. Mai 1891 kam es, z. B. in Neustadt, an.[4] Dann S. 57.")]
    ['Am 3. Mai 1891 kam es, z. B. in Neustadt, an.', 'Dann S. 57.']
    >>> split_sentences("Er kam.[2] 1891 ging er.")[0].footnotes
    (2,)
    """
    sentences: list[Sentence] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if not _is_boundary(text, match.start(), end):
            continue
        _append_sentence(sentences, text, start, end, offset)
        start = end
    _append_sentence(sentences, text, start, len(text), offset)
    return sentences


def _is_boundary(text: str, punct_start: int, end: int) -> bool:
    rest = text[end:].lstrip()
    if not rest:
        return True
    word = re.search(r"(\S+)$", text[:punct_start])
    token = word.group(1) if word else ""
    bare = token.lstrip("(„\"'").lower()
    if text[punct_start] == ".":
        if bare in _ABBREVIATIONS or (len(bare) == 1 and bare.isalpha()):
            return False
        if bare.isdigit() and len(bare) <= 2:  # ordinal: "3. Mai", "5. Auflage"
            return False
        if bare.isdigit() and rest.lower().startswith(_MONTHS):
            return False
    # A new sentence starts with an upper-case letter, a digit or an opening quote.
    return rest[0].isupper() or rest[0].isdigit() or rest[0] in "„\"'«»(["


def _append_sentence(out: list[Sentence], text: str, start: int, end: int, offset: int) -> None:
    raw = text[start:end]
    stripped = raw.strip()
    if not stripped:
        return
    lead = len(raw) - len(raw.lstrip())
    footnotes = tuple(int(n) for n in MARKER.findall(stripped))
    clean = re.sub(r"\s{2,}", " ", MARKER.sub("", stripped)).strip()
    s_start = offset + start + lead
    out.append(Sentence(len(out), clean, s_start, s_start + len(stripped), footnotes))


def parse_text(text: str, doc_id: str, meta: dict[str, Any] | None = None) -> Document:
    """Parse plain text or Markdown: first non-empty line is the title, blank lines split paragraphs."""
    meta = dict(meta or {})
    blocks = [(m.start(), m.group()) for m in re.finditer(r"[^\n]+(?:\n[^\n]+)*", text)]
    if not blocks:
        raise CorpusError(f"document {doc_id!r} is empty: give a file with text in it")
    title = meta.get("title") or blocks[0][1].strip().lstrip("#").strip()
    paragraphs: list[Paragraph] = []
    references: dict[int, str] = {}
    heading = ""
    in_references = False
    body_blocks = blocks[1:] if _same(blocks[0][1], title) else blocks
    for start, block in body_blocks:
        lines = [ln for ln in block.split("\n") if ln.strip().lower() not in DEBRIS]
        if not lines:
            continue
        if in_references:
            parsed = [_REFERENCE_LINE.match(ln) for ln in lines]
            if all(parsed):
                references.update({int(m.group(1)): m.group(2) for m in parsed if m})
                continue
        first = lines[0].strip()
        if len(lines) == 1 and _is_heading(first):
            heading = first.lstrip("#").strip()
            in_references = heading.lower() in _REFERENCE_HEADINGS
            continue
        body_start = start + block.index(lines[0])
        body = text[body_start : start + len(block)]
        sentences = tuple(split_sentences(body, body_start))
        if sentences:
            paragraphs.append(
                Paragraph(len(paragraphs), body_start, start + len(block), sentences, heading)
            )
    if not paragraphs:
        raise CorpusError(f"document {doc_id!r} has a title but no paragraphs of text")
    return Document(doc_id, title, text, tuple(paragraphs), references, meta)


def _same(a: str, b: str) -> bool:
    return a.strip().lstrip("#").strip() == b.strip()


def _is_heading(line: str) -> bool:
    if line.startswith("#"):
        return True
    return len(line) <= 80 and not re.search(r"[.!?:;,“\"]$|\[\d+\]$", line)


class _TextExtractor(HTMLParser):
    _BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "br", "tr", "section", "title"}
    _SKIP = {"script", "style", "nav", "footer", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self.skip += 1
        if tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP and self.skip:
            self.skip -= 1
        if tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self.skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, one block per paragraph.

    >>> html_to_text("<html><head><title>T</title></head><body><h1>T</h1><p>A &amp; b.</p></body></html>")
    'T\\n\\nA & b.'
    """
    parser = _TextExtractor()
    parser.feed(markup)
    body = "".join(parser.parts)
    blocks = [re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v]*", " ", b).strip() for b in re.split(r"\n\s*\n", body)]
    text = "\n\n".join(html.unescape(b) for b in blocks if b)
    title = parser.title.strip()
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}"
    return text


def read_document(path: Path) -> Document:
    """Read and parse one file; raise ``CorpusError`` with a fix when it cannot be used."""
    if not path.exists():
        raise CorpusError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder; use load_documents() for folders")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise CorpusError(
            f"{path}: unsupported file type {path.suffix or '(none)'}; give "
            + "/".join(SUPPORTED_SUFFIXES)
        )
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise CorpusError(f"{path} looks binary (contains NUL bytes); give a text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 (byte {exc.start}); convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta_path = path.with_name(path.stem + ".meta.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if path.suffix.lower() in (".html", ".htm"):
        text = html_to_text(text)
    meta.setdefault("path", path.name)
    return parse_text(text, meta.get("id") or slugify(path.stem), meta)


def load_documents(paths: list[Path]) -> list[Document]:
    """Read files and folders (recursively, supported suffixes only), sorted for stable ids."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
            if not found:
                raise CorpusError(f"{path}: no {'/'.join(SUPPORTED_SUFFIXES)} files in this folder")
            files.extend(found)
        else:
            files.append(path)
    docs = [read_document(f) for f in files]
    ids = [d.doc_id for d in docs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CorpusError(f"two files map to the same document id {dupes}; rename one of them")
    return docs
