"""Cut parsed documents into chunks: a pure function with deterministic ids.

A chunk is a run of up to ``sentences`` consecutive sentences of one paragraph, so a citation
points at a fact, not at half the article. Its id is ``<doc>:p<paragraph>:s<first sentence>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .corpus import Document

CHUNKER_VERSION = "2"


@dataclass(frozen=True)
class Span:
    """One sentence inside a chunk, with its offsets in the document's source text."""

    text: str
    start: int
    end: int
    footnotes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    title: str
    paragraph: int
    sentence: int
    text: str
    start: int
    end: int
    spans: tuple[Span, ...]
    footnotes: tuple[int, ...]
    references: dict[int, str]
    content_hash: str

    def cited_by(self, span: Span) -> list[str]:
        """The Einzelnachweise that ``span``, one of this chunk's sentences, cites."""
        return [self.references[n] for n in span.footnotes if n in self.references]

    def metadata(self) -> dict[str, str | int]:
        """Flat metadata for the vector store (lists and dicts as JSON strings)."""
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "paragraph": self.paragraph,
            "sentence": self.sentence,
            "start": self.start,
            "end": self.end,
            "spans": json.dumps([[s.text, s.start, s.end, list(s.footnotes)] for s in self.spans], ensure_ascii=False),
            "footnotes": ",".join(str(n) for n in self.footnotes),
            "references": json.dumps({str(k): v for k, v in self.references.items()}, ensure_ascii=False),
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_metadata(cls, chunk_id: str, text: str, meta: dict) -> Chunk:
        """Inverse of :meth:`metadata`.

        >>> from assistant.corpus import parse_text
        >>> c = chunk_document(parse_text("T\\n\\nA ist so.[1] B.\\n\\nEinzelnachweise\\n\\n  1. Buch, S. 3.", "d"))[0]
        >>> Chunk.from_metadata(c.id, c.text, c.metadata()) == c
        True
        """
        return cls(
            id=chunk_id,
            doc_id=str(meta["doc_id"]),
            title=str(meta["title"]),
            paragraph=int(meta["paragraph"]),
            sentence=int(meta["sentence"]),
            text=text,
            start=int(meta["start"]),
            end=int(meta["end"]),
            spans=tuple(Span(t, int(a), int(b), tuple(f)) for t, a, b, f in json.loads(str(meta["spans"]))),
            footnotes=tuple(int(n) for n in str(meta["footnotes"]).split(",") if n),
            references={int(k): v for k, v in json.loads(str(meta["references"])).items()},
            content_hash=str(meta["content_hash"]),
        )


def chunk_document(doc: Document, sentences: int = 2) -> list[Chunk]:
    """Chunks of up to ``sentences`` sentences, never crossing a paragraph.

    >>> from assistant.corpus import parse_text
    >>> doc = parse_text("T\\n\\nEins.[1] Zwei. Drei.\\n\\nVier.", "art")
    >>> [(c.id, c.text, c.footnotes) for c in chunk_document(doc, 2)]
    [('art:p0:s0', 'Eins. Zwei.', (1,)), ('art:p0:s2', 'Drei.', ()), ('art:p1:s0', 'Vier.', ())]
    """
    chunks: list[Chunk] = []
    for para in doc.paragraphs:
        for first in range(0, len(para.sentences), sentences):
            group = para.sentences[first : first + sentences]
            spans = tuple(Span(s.text, s.start, s.end, doc.backing_footnotes(para, s)) for s in group)
            footnotes = tuple(dict.fromkeys(n for s in spans for n in s.footnotes))
            text = " ".join(s.text for s in group)
            references = {n: doc.references[n] for n in footnotes if n in doc.references}
            # The hash covers what is embedded; offsets and references may move without re-embedding.
            identity = f"{CHUNKER_VERSION}\x00{text}"
            chunks.append(
                Chunk(
                    id=f"{doc.doc_id}:p{para.index}:s{first}",
                    doc_id=doc.doc_id,
                    title=doc.title,
                    paragraph=para.index,
                    sentence=first,
                    text=text,
                    start=group[0].start,
                    end=group[-1].end,
                    spans=spans,
                    footnotes=footnotes,
                    references=references,
                    content_hash=hashlib.sha256(identity.encode()).hexdigest()[:16],
                )
            )
    return chunks


def chunk_documents(docs: list[Document], sentences: int = 2) -> list[Chunk]:
    return [chunk for doc in docs for chunk in chunk_document(doc, sentences)]
