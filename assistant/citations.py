"""Turn a model's draft into a correctly cited answer.

Small models cite badly, so the model's markers are only hints. Every sentence of the draft is
checked against the sentences of the retrieved passages; a supported sentence is cited with the
passage that supports it best (the model's own marker wins a tie), an unsupported one is dropped.
Footnotes are renumbered 1…n in order of first appearance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chunking import Chunk, Span
from .corpus import split_sentences
from .embeddings import cosine
from .evidence import VERDICT_OPENING, negated
from .lexical import held, same_word, tokenize
from .settings import Settings

_MARKER_GROUP = re.compile(r"\s*\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_NUMBER = re.compile(r"\d+")
_VERDICTS = {"ja", "nein", "yes", "no", "doch"}
# What the line naming an answer's Einzelnachweis opens with ("Einzelnachweis: Autor: Titel … [1]").
SOURCE_LABEL = {"de": "Einzelnachweis", "en": "Source"}


# Where a sentence turns from one statement to another ("sah keine X vor, sondern regelte Y").
_CLAUSE = re.compile(r"[;:]|,\s*(?=(?:sondern|aber|doch|jedoch|während|wohingegen|but|whereas|while|yet)\b)", re.IGNORECASE)


def same_polarity(claim: str, source: str) -> bool:
    """Both or neither negate: "schadete" is not supported by "schadete nicht". In a source that
    turns from one statement to another, the clause the claim shares most words with counts.

    >>> same_polarity("Der Regen schadete der Ernte.", "Er schadete ihr aber nicht.")
    False
    >>> same_polarity("No, it did not.", "Der Vertrag von Altdorf sah keine Zölle vor.")
    True
    >>> source = "Der Vertrag sah keine Zölle vor, sondern regelte den Bau einer Brücke."
    >>> same_polarity("Der Vertrag regelte den Bau einer Brücke.", source)
    True
    >>> same_polarity("Der Vertrag sah Zölle vor.", source)
    False
    >>> same_polarity("Sie unterzeichnete nicht.", "Sie unterzeichnete, aber er ratifizierte nicht.")
    False
    >>> same_polarity(source, source), same_polarity("Anna Berger.", "Das war nicht erlaubt. Es kam Anna Berger.")
    (True, True)
    >>> same_polarity("No: Germany ended it.", "Germany ended it."), same_polarity("Er kam nach Altdorf, aber Koch nicht.", "Er kam nach Altdorf. Es war 1922.")
    (True, False)
    """
    claim = VERDICT_OPENING.sub("", claim) or claim  # "No: Germany ended it." states what follows the verdict
    clauses = [clause for sentence in split_sentences(source) for clause in _CLAUSE.split(sentence.text)] or [source]
    if len(clauses) < 2:
        return negated(claim) == negated(source)
    # A claim that turns itself (a copy of such a sentence) is compared clause by clause; a clause
    # of no content word ("Nein:") or of words the source lacks says nothing of its polarity here.
    parts = [part for part in _CLAUSE.split(claim) if tokenize(part)] or [claim]
    for part in parts:
        words = set(tokenize(part))
        best = max(clauses, key=lambda clause: len(words & set(tokenize(clause))))
        if words & set(tokenize(best)) or len(parts) == 1:
            if negated(part) != negated(best):
                return False
        elif negated(part) and not negated(source):  # a denial of something the source never names
            return False
    return True


@dataclass(frozen=True)
class Footnote:
    """One footnote: the passage it points at, the exact supporting sentence, and its sources."""

    n: int
    chunk_id: str
    doc_id: str
    title: str
    passage: str
    sentence: str
    start: int
    end: int
    references: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "title": self.title,
            "passage": self.passage,
            "sentence": self.sentence,
            "start": self.start,
            "end": self.end,
            "references": {str(k): v for k, v in self.references.items()},
        }


def parse_markers(text: str) -> tuple[str, list[int]]:
    """Remove citation markers from a sentence, returning the text and the numbers in order.

    >>> parse_markers("Neustadt [1, 2][3].")
    ('Neustadt.', [1, 2, 3])
    """
    numbers = [int(n) for group in _MARKER_GROUP.findall(text) for n in re.split(r"[,;]", group)]
    return _MARKER_GROUP.sub("", text).strip(), numbers


def lexical_support(claim: str, source: str) -> float:
    """Share of the claim's content words found in the source; 0 when a number is missing.

    >>> lexical_support("Die Lehrlinge wurden in Neustadt ausgebildet.", "Lehrlinge wurden in Neustadt ausgebildet.")
    1.0
    >>> lexical_support("Es waren 100 Lehrlinge.", "Es waren einige hundert Lehrlinge.")
    0.0
    """
    if set(_NUMBER.findall(claim)) - set(_NUMBER.findall(source)):
        return 0.0
    words = set(tokenize(claim))
    if not words:
        return 0.0
    have = set(tokenize(source))
    found = sum(1 for w in words if w in have or any(h.startswith(w) or w.startswith(h) for h in have if len(h) >= 5 and len(w) >= 5))
    return found / len(words)


def numbers_supported(claim: str, source: str) -> bool:
    """Every number of the claim is in the source, or is the difference of two of its numbers
    (years between two dates: a computed answer, not an invented one).

    >>> numbers_supported("Es dauerte 9 Jahre.", "von 1891 bis 1900"), numbers_supported("Es waren 12.", "1891")
    (True, False)
    """
    have = {int(n) for n in _NUMBER.findall(source)}
    derived = {abs(a - b) for a in have for b in have if a != b}
    return all(int(n) in have or int(n) in derived for n in _NUMBER.findall(claim))


def close_together(claim: str, source: str) -> bool:
    """The claim's words sit close together in the source, as they do when both say the same thing.

    A name taken from another clause of the sentence (the author where the editor was asked) lies
    far from the claim's other words, though every word occurs.

    >>> src = ("Der Maler Koch musste daraufhin nach Birkenfeld ziehen, die zuständige "
    ...        "Verlegerin Berger wurde vom Gericht zu einer Geldbuße verurteilt.")
    >>> close_together("Koch wurde zu einer Geldbuße verurteilt.", src), close_together("Berger wurde verurteilt.", src)
    (False, True)
    """
    words = list(dict.fromkeys(tokenize(claim)))
    source_words = tokenize(source)
    hits = sorted(
        (i, w) for w, word in enumerate(words) for i, s in enumerate(source_words)
        if same_word(s, word)
    )
    present = {w for _, w in hits}
    if len(present) < 2:
        return True
    best, counts, left = len(source_words), {}, 0
    for i, w in hits:  # smallest window of source words that holds every present claim word
        counts[w] = counts.get(w, 0) + 1
        while len(counts) == len(present):
            j, v = hits[left]
            best = min(best, i - j + 1)
            counts[v] -= 1
            if not counts[v]:
                del counts[v]
            left += 1
    return best <= 2 * len(present) + 1


@dataclass
class Support:
    """Decides whether a source sentence supports a claim, lexically or by embedding similarity."""

    similarity: Callable[[str, list[str]], list[float]] | None = None
    min_lexical: float = Settings.model_fields["support_min_lexical"].default
    min_similarity: float = Settings.model_fields["support_min_similarity"].default

    @classmethod
    def for_settings(cls, settings: Any, embeddings: Callable[[], Any] | None) -> Support:
        """The support test with the settings' thresholds; ``embeddings`` returns the embedder when
        a claim is first compared by meaning (it may still be loading before), or is ``None``."""
        if embeddings is None:
            return cls(None, settings.support_min_lexical, settings.support_min_similarity)
        margin = settings.support_min_clause_similarity - settings.support_min_similarity

        def similarity(claim: str, texts: list[str]) -> list[float]:
            return embedding_similarity(embeddings(), margin)(claim, texts)

        return cls(similarity, settings.support_min_lexical, settings.support_min_similarity)

    def holds(self, claim: str, passages: Sequence[str]) -> bool:
        """Whether the passages together support the claim: their words cover it (numbers and
        negation included), or one of their sentences is close to it in meaning."""
        if not passages:
            return False
        joined = " ".join(passages)
        if not numbers_supported(claim, joined):
            return False
        if lexical_support(_NUMBER.sub("", claim), joined) >= self.min_lexical and same_polarity(claim, joined):
            return True
        sentences = [s.text for p in passages for s in split_sentences(p)]
        close = [
            i for i, score in enumerate(self.similarity(claim, sentences) if self.similarity else [])
            if score >= self.min_similarity
        ]
        return any(same_polarity(claim, sentences[i]) for i in close)

    def best(self, claim: str, spans: Sequence[tuple[Chunk, Span]], prefer: set[str]) -> tuple[Chunk, Span] | None:
        if not spans:
            return None
        lexical = [lexical_support(_NUMBER.sub("", claim), s.text) for _, s in spans]
        numbers_ok = [numbers_supported(claim, s.text) and same_polarity(claim, s.text) for _, s in spans]
        dense = self.similarity(claim, [s.text for _, s in spans]) if self.similarity else [0.0] * len(spans)
        scored = []
        for i, (chunk, _span) in enumerate(spans):
            # Every word present but scattered over the sentence: a different statement.
            scattered = lexical[i] >= self.min_lexical and not close_together(claim, spans[i][1].text)
            ok = numbers_ok[i] and not scattered and (lexical[i] >= self.min_lexical or dense[i] >= self.min_similarity)
            if ok:
                bonus = 0.05 if chunk.id in prefer else 0.0
                scored.append((max(lexical[i], dense[i]) + bonus, i))
        if not scored:
            return None
        return spans[max(scored)[1]]


FRAGMENT_WORDS = 3  # a claim of this many content words or fewer is a fragment ("Anna Berger."), not a sentence
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•]|(?P<marker>\[\d{1,3}\]))\s+")  # a passage's marker opens an item too
_ENDS_SENTENCE = re.compile(r"[.!?…][“”\"')»]*(?:\s*\[\d[\d,;\s]*\])*$")


def is_fragment(claim: str) -> bool:
    """A claim of a few words, without what a sentence would say of them.

    >>> is_fragment("Neustadt [2]."), is_fragment("Anna Berger zog nach Neustadt.")
    (True, False)
    """
    return len(tokenize(parse_markers(claim)[0])) <= FRAGMENT_WORDS


def unlisted(text: str) -> str:
    r"""A draft laid out as a list, as plain sentences: items that are sentences stand as such,
    without their numbers or bullets; fragments join the line that introduces them ("Es waren:
    Neustadt, Birkenfeld."). As one line, "… waren: 1. Neustadt 2. Birkenfeld" is one claim holding
    numbers no source has; as sentences of their own, "Neustadt." is a fragment cut off from what
    it answers. Text without list items stays as it is.

    >>> unlisted("Es waren:\n\n1. Neustadt [2]\n2. Birkenfeld [3]\n\nDas war alles.")
    'Es waren: Neustadt [2], Birkenfeld [3]. Das war alles.'
    >>> unlisted("Folgen:\n- Die Autorin zog mit dem Verlag nach Neustadt\n- Sie schrieb.\n- Er blieb.")
    'Folgen. Die Autorin zog mit dem Verlag nach Neustadt. Sie schrieb. Er blieb.'
    >>> unlisted("Es sind:\n\n[6] Die Chronik\n[7] Der Bote [7]\n[3] Er kam?!")
    'Es sind: Die Chronik [6], Der Bote [7]. Er kam [3]?!'
    >>> unlisted("Am 3. Mai 1901.\nDanach kam nichts.")
    'Am 3. Mai 1901.\nDanach kam nichts.'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not any(_LIST_ITEM.match(line) for line in lines):
        return text
    sentences: list[str] = []
    joining = False  # the last sentence introduces or already holds fragments
    for line in lines:
        opening = _LIST_ITEM.match(line)
        item = _LIST_ITEM.sub("", line).strip()
        marker = opening.group("marker") if opening else None
        if marker and not item.endswith(marker):  # "[6] Die Chronik": the marker goes where markers stand
            item = re.sub(r"(?=[.!?…]*$)", f" {marker}", item, count=1)
        short = bool(opening) and is_fragment(item) and not _ENDS_SENTENCE.search(item)
        if short and sentences and (joining or sentences[-1].endswith(":")):
            sentences[-1] += (" " if sentences[-1].endswith(":") else ", ") + item
            joining = True
            continue
        sentences.append(item)
        joining = short
    return " ".join(s.rstrip(":") + ("" if _ENDS_SENTENCE.search(s.rstrip(":")) else ".") for s in sentences)


def claims(text: str) -> list[tuple[str, list[int]]]:
    """Each sentence of an answer without its markers, and the marker numbers it carried.

    The sentence splitter lifts single ``[n]`` markers into the sentence's footnotes (as in the
    article); grouped ones (``[1, 2]``) stay in the text; both count.

    >>> claims("In Neustadt [3]. In Birkenfeld [1, 2][4].")
    [('In Neustadt.', [3]), ('In Birkenfeld.', [4, 1, 2])]
    """
    found = []
    for sentence in split_sentences(text):
        claim, markers = parse_markers(sentence.text)
        found.append((re.sub(r"\s+([.!?…,;:])", r"\1", claim), list(sentence.footnotes) + markers))
    return found


def comma_clauses(sentence: str) -> list[str]:
    """The clauses of a sentence of several (split at commas, semicolons, colons and dashes), each
    of at least three content words; none for a sentence of one. (``_CLAUSE`` splits only where a
    sentence turns, for its polarity; here each fact of a sentence is compared on its own.)

    >>> comma_clauses("Der Maler Paul Koch musste umziehen, die Verlegerin Anna Berger wurde verurteilt.")
    ['Der Maler Paul Koch musste umziehen', 'die Verlegerin Anna Berger wurde verurteilt.']
    >>> comma_clauses("In Neustadt, 1891.")
    []
    """
    parts = [p.strip() for p in re.split(r"[,;:]\s+|\s+[–-]\s+", sentence)]
    parts = [p for p in parts if len(tokenize(p)) >= 3]
    return parts if len(parts) > 1 else []


def in_other_clause(fragment: str, names: Iterable[str], sentence: str) -> bool:
    """The sentence names ``names`` and holds the fragment, but only in clauses without them:
    what it says of the fragment it says of someone else ("Koch moved to Neustadt, Berger was
    sentenced": Neustadt is not where Berger was born).

    >>> s = "Der Maler Paul Koch musste nach Neustadt ziehen, die Verlegerin Anna Bergers Freundin wurde verurteilt."
    >>> in_other_clause("Neustadt", ["Berger"], s), in_other_clause("Verlegerin", ["Berger"], s)
    (True, False)
    >>> in_other_clause("Koch", ["Berger"], "Doch Berger und ihr Gehilfe Koch zögerten lange, weil es schadete.")
    False
    """
    said = set(tokenize(fragment))
    named = {t for name in names for t in tokenize(name)} - said
    if not said or not named or not any(held(t, set(tokenize(sentence))) for t in named):
        return False
    holding = [clause for part in comma_clauses(sentence) if said <= (clause := set(tokenize(part)))]
    return bool(holding) and not any(held(t, clause) for clause in holding for t in named)


def embedding_similarity(embeddings: Any, clause_margin: float | None = None) -> Callable[[str, list[str]], list[float]]:
    """Claim-to-sentence similarity, both encoded as documents (symmetric: a translation scores
    0.65-0.77 against its source, a wrong place or name 0.54-0.59 on hand-made pairs).

    A sentence of two facts scores low against a claim of one ("Koch moved to Birkenfeld" against
    "Koch zog nach Birkenfeld, Berger wurde verurteilt"); with ``clause_margin`` its
    clauses count too, on the sentence's scale: a clause's cosine less the margin.
    """

    def similarity(claim: str, texts: list[str]) -> list[float]:
        parts = [comma_clauses(t) if clause_margin is not None else [] for t in texts]
        claim_vector, *vectors = embeddings.embed_documents([claim, *texts, *(c for p in parts for c in p)])
        rest = iter(vectors[len(texts):])
        return [
            max([cosine(claim_vector, whole), *(cosine(claim_vector, next(rest)) - clause_margin for _ in p)])
            for whole, p in zip(vectors, parts)
        ]

    return similarity


Verified = tuple[str, list[tuple[Chunk, Span]]]


def verify(
    draft: str,
    numbering: dict[int, Chunk],
    passages: Sequence[Chunk],
    support: Support,
    keep: Callable[[str], bool] | None = None,
    evidence: Sequence[tuple[Chunk, Span]] = (),
    given: frozenset[str] = frozenset(),
) -> list[Verified]:
    """The sentences of ``draft`` that the passages support, each with its best supporting sentence.

    Args:
        draft: the model's text, with markers as the model wrote them.
        numbering: the marker numbers the model was shown -> chunks (a marker breaks ties).
        passages: the chunks an answer may cite (the retrieved ones).
        support: the support test.
        keep: an extra test a sentence must pass (e.g. that it is informative); all pass without it.
        evidence: sentences that may support a claim together (two facts in one claim, or a
            number computed from two of theirs); the claim then cites each that shares a word with it.
        given: the question's words, which a computed claim may repeat ("lagen 4 Jahre zwischen …").
    """
    spans = [(c, s) for c in passages for s in c.spans]
    out: list[Verified] = []
    # "Satz. [1]" -> "Satz [1]." so that a marker stays with the sentence it follows.
    draft = re.sub(r"([.!?…])\s*((?:\[\d[\d,;\s]*\])+)", r" \2\1", draft.replace("\n", " "))
    for claim, markers in claims(draft):
        if len(tokenize(claim)) == 0 or claim.strip(" .,!").lower() in _VERDICTS:
            continue
        if not re.search(r"[.!?…:][“”\"')»]*$", claim):
            claim += "."
        if keep is not None and not keep(claim):
            continue
        prefer = {numbering[m].id for m in markers if m in numbering}
        best = support.best(claim, spans, prefer)
        if best is not None:
            chunk, span = best
            if _is_truncated_copy(claim, span.text):
                claim = span.text  # a cut-off copy of the source loses facts (lists): quote it whole
            out.append((claim, [(chunk, span)]))
        elif evidence and _computed(claim, [s.text for _, s in evidence], support, given):
            words = set(tokenize(claim))
            out.append((claim, [(c, s) for c, s in evidence if words & set(tokenize(s.text))] or list(evidence)))
    return out


def _computed(claim: str, evidence: list[str], support: Support, given: frozenset[str]) -> bool:
    """The evidence supports the claim together; a number computed from it (a difference of
    years) may come with the question's own words around it."""
    if support.holds(claim, evidence):
        return True
    joined = " ".join(evidence)
    numbers = _NUMBER.findall(claim)
    if not numbers or not numbers_supported(claim, joined) or all(n in _NUMBER.findall(joined) for n in numbers):
        return False
    rest = [t for t in tokenize(_NUMBER.sub("", claim)) if t not in given]
    return not rest or lexical_support(" ".join(rest), joined) >= support.min_lexical


def render(verified: Sequence[Verified], lead: str = "") -> tuple[str, list[Footnote]]:
    """Join verified sentences with markers renumbered by first use; ``lead`` (a verdict) opens the
    first, after a colon.

    Returns:
        The answer text and its footnotes.
    """
    footnotes: dict[str, Footnote] = {}
    out: list[str] = []
    for claim, sources in verified:
        numbers = []
        for chunk, span in sources:
            key = f"{chunk.id}@{span.start}"
            if key not in footnotes:
                footnotes[key] = Footnote(
                    n=len(footnotes) + 1,
                    chunk_id=chunk.id,
                    doc_id=chunk.doc_id,
                    title=chunk.title,
                    passage=chunk.text,
                    sentence=span.text,
                    start=span.start,
                    end=span.end,
                    references={n: chunk.references[n] for n in span.footnotes if n in chunk.references},
                )
            numbers.append(footnotes[key].n)
        out.append(_with_marker(claim, *dict.fromkeys(numbers)))
    if out and lead:
        out[0] = f"{lead}: {out[0]}"
    return " ".join(out), list(footnotes.values())


def cite(
    draft: str, numbering: dict[int, Chunk], passages: Sequence[Chunk], support: Support
) -> tuple[str, list[Footnote]]:
    """Verify and cite each sentence of ``draft`` (:func:`verify`, then :func:`render`)."""
    return render(verify(draft, numbering, passages, support))


def _is_truncated_copy(claim: str, source: str) -> bool:
    """The claim is the start of the source sentence, copied verbatim and cut before its end.

    >>> _is_truncated_copy("Viele wurden später Lehrer.", "Viele wurden später Lehrer (z. B. Koch).")
    True
    >>> _is_truncated_copy("Die Lehrlinge lernten in Neustadt.", "Lehrlinge lernten in Neustadt.")
    False
    """
    core = claim.rstrip(" .!?…")
    return len(core) >= 20 and len(core) < len(source.rstrip(" .!?…")) and source.startswith(core)


def _with_marker(claim: str, *numbers: int) -> str:
    """Put the markers before the sentence's final punctuation.

    >>> _with_marker("In Neustadt.", 1), _with_marker("Vier Jahre", 1, 2)
    ('In Neustadt [1].', 'Vier Jahre [1][2]')
    """
    marks = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"[.!?…]+[“”\"')»]*$", claim)
    if match:
        return f"{claim[: match.start()].rstrip()} {marks}{claim[match.start():]}"
    return f"{claim} {marks}"
