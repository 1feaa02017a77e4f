"""Words and the lexical (BM25) index: one normalisation for retrieval, evidence and verification.

A word is lower-cased, stop words are dropped, and the rest goes through PyStemmer's Snowball
stemmer (German by default: it folds umlauts and ß itself, and reads "ue" as "ü"). Steps of our
own add what Snowball does not: a noun in "-ung" loses it, so it meets its verb ("Leitung" /
"leitete": "leit"); a participle loses the "ge" after a separable prefix ("ausgebildet" /
"Ausbildung": "ausbild"); the index adds to every long token the known words of four or more
letters that begin or end it (compound parts: "Panzerschulen" also counts as "panz"); and a query
word the index lacks meets an indexed one that differs only by a short ending ("Kowalskis").

The index is ``bm25s`` (Lucene BM25 on sparse matrices). It is built at ingest, saved beside the
Chroma collection it describes and loaded memory-mapped, so an app start reads it instead of
rebuilding it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

STEMMER_LANGUAGE = "german"  # Snowball's German stemmer; on English words it strips -s/-en/-er/-e alike
# Saved indexes record this; one made by other word rules is rebuilt, not misread. Change it with them.
WORD_RULES = f"snowball-{STEMMER_LANGUAGE}+ung+ge+parts/3"
_STOPWORDS = set(
    """der die das den dem des ein eine einer einen einem eines und oder aber in im ins an am auf
    aus bei mit nach von vom vor zu zum zur über unter durch für gegen ohne um als wie wo wer was
    wann warum wieso weshalb welche welcher welches welchen ist sind war waren wurde wurden hat
    hatte hatten haben sich sie er es ihr ihre ihren sein seine nicht auch nur noch so dass da
    dies diese dieser diesem diesen dann denn doch kein keine the a an of to in on for and or
    is are was were be been by with what who whom when where why how which did does do that this
    from at as it its their they he she his her not about ihrem ihres ihrer seinem seiner seines seinen
    ihm ihn dort dessen deren jene jener man wir uns mir mich dir dich them him there
    überhaupt eigentlich bloß""".split()  # the last: particles that colour a question, never its topic
)
_WORD = re.compile(r"\w+")
# A participle with "ge" after a separable prefix ("ausgebildet") meets its verb and noun ("Ausbildung").
_PARTICIPLE = re.compile(r"^(ab|an|auf|aus|bei|ein|fest|fort|her|hin|mit|nach|vor|weg|zu|zurück|zusammen)ge(\w{3,}t(?:e[mnrs]?)?)$")
_stem_lock = threading.Lock()  # a PyStemmer object must not be used by two threads at once


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer(STEMMER_LANGUAGE)


@lru_cache(maxsize=65536)
def normalise(word: str) -> str:
    """Case-, umlaut- and inflection-insensitive form of one word.

    >>> [normalise(w) for w in ["Panzern", "Panzer", "Verträgen", "Vertrag", "Ruestung", "Straße", "Leitung"]]
    ['panz', 'panz', 'vertrag', 'vertrag', 'rust', 'strass', 'leit']
    >>> [normalise(w) for w in ["ausgebildet", "ausgebildeten", "Ausbildung", "ausgeben", "ausgegeben"]]
    ['ausbild', 'ausbild', 'ausbild', 'ausgeb', 'ausgegeb']
    """
    low = _PARTICIPLE.sub(r"\1\2", word.lower())
    with _stem_lock:
        stem = _stemmer().stemWord(low)
    return stem[:-3] if stem.endswith("ung") and len(stem) >= 7 else stem


# The question words ("wer", "wann", "how"), as written.
W_WORDS = frozenset(
    """wer wen wem wessen was wann wo woher wohin warum wieso weshalb wie welche welcher welches
    welchen welchem womit wodurch wofür worüber wozu woran worauf wovon inwiefern who whom whose
    what when where why how which wieviel wieviele""".split()
)
# The words that ask, normalised: the question words and those that join them ("wie viele", "how
# many", "wie heißt"): a question's own, not what it is about.
ASKING = frozenset(normalise(w) for w in W_WORDS | {"viel", "viele", "many", "much", "heißt", "hieß", "heißen", "hießen"})


def tokenize(text: str) -> list[str]:
    """Normalised content words of a text.

    >>> tokenize("Wo wurden die Lehrlinge ausgebildet?")
    ['lehrling', 'ausbild']
    """
    return [
        normalise(w) for w in _WORD.findall(text)
        if w.lower() not in _STOPWORDS and (len(w) > 1 or w.isdigit())
    ]


def same_word(a: str, b: str) -> bool:
    """Two normalised words that are one word, or share their first five letters (inflection and
    derivation the stemmer leaves apart: "verhandelt" / "verhandl").

    >>> same_word("verhandelt", "verhandl"), same_word("pilot", "pilot"), same_word("berg", "bergs")
    (True, True, False)
    """
    return a == b or (len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5])


def near_form(a: str, b: str) -> bool:
    """Two normalised words that differ only by an ending of up to two letters the stemmer left: a
    genitive or possessive ("kowalskis" / "kowalski"), a participle ("verurteil" / "verurteilt").

    >>> near_form("kowalskis", "kowalski"), near_form("brot", "brots"), near_form("garten", "gartenhaus")
    (True, False, False)
    """
    return len(a) >= 5 and len(b) >= 5 and abs(len(a) - len(b)) <= 2 and (a.startswith(b) or b.startswith(a))


def held(token: str, words: set[str]) -> bool:
    """The words hold the token, or a :func:`near_form` of it ("kowalskis" for "kowalski")."""
    return token in words or any(near_form(token, w) for w in words)


def compound_parts(token: str, vocabulary: set[str] | dict[str, int]) -> list[str]:
    """Up to four known words of >= 4 letters that begin or end a longer token, longest first.

    Looks up the token's own prefixes and suffixes, so the cost is the token's length, not the
    vocabulary's size.

    >>> compound_parts("panzerschul", {"panz", "schul", "pilot"})
    ['schul', 'panz']
    """
    found: list[str] = []
    if len(token) < 8:
        return found
    for length in range(len(token) - 3, 3, -1):
        for part in (token[:length], token[-length:]):
            if part in vocabulary and part not in found:
                found.append(part)
    return found[:4]


class LexicalIndex:
    """BM25 over normalised tokens plus compound parts, with the ids of what it indexes.

    >>> texts = ["Die Panzerschule lag bei Neustadt.", "Panzer kamen aus Birkenfeld.", "Lehrlinge lernten in Altdorf."]
    >>> index = LexicalIndex.build(texts, ["a", "b", "c"])
    >>> [i for i, _ in index.search("Wo fuhren Panzer?", 3)]
    ['b', 'a']
    """

    K1, B = 1.2, 0.75

    def __init__(self, bm25, ids: list[str]) -> None:
        self._bm25 = bm25
        self.ids = ids
        self._vocabulary = {t for t in bm25.vocab_dict if len(t) >= 4}

    @cached_property
    def _by_head(self) -> dict[str, list[str]]:
        """Indexed words by their first five letters, built when a query first needs near forms."""
        heads: dict[str, list[str]] = {}
        for t in self._vocabulary:
            heads.setdefault(t[:5], []).append(t)
        return heads

    @classmethod
    def build(cls, texts: list[str], ids: list[str]) -> LexicalIndex:
        import bm25s

        base = [tokenize(t) for t in texts]
        vocabulary = {tok for toks in base for tok in toks if len(tok) >= 4}
        parts = {tok: compound_parts(tok, vocabulary) for tok in {t for toks in base for t in toks}}
        docs = [toks + [p for t in toks for p in parts[t]] for toks in base]
        bm25 = bm25s.BM25(k1=cls.K1, b=cls.B, method="lucene")
        bm25.index(docs, show_progress=False)
        return cls(bm25, list(ids))

    def save(self, folder: Path) -> None:
        """Write the index to ``folder`` whole: into a temporary sibling first, then renamed. If
        another process saved the same index first, or the write fails, the index in memory still
        serves; only the next start rebuilds it."""
        tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            self._bm25.save(str(tmp), show_progress=False)
            (tmp / "ids.json").write_text(json.dumps({"word_rules": WORD_RULES, "ids": self.ids}), encoding="utf-8")
            os.rename(tmp, folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Memory-map a saved index; ``FileNotFoundError`` or ``ValueError`` if it is not whole or
        was made by other word rules."""
        import bm25s

        saved = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or saved.get("word_rules") != WORD_RULES:
            raise ValueError(f"lexical index {folder} was made by other word rules")
        ids = saved["ids"]
        bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        if bm25.scores["num_docs"] != len(ids):
            raise ValueError(f"lexical index {folder} does not match its ids")
        return cls(bm25, ids)

    def near_forms(self, token: str) -> list[str]:
        """Indexed words that are a :func:`near_form` of an unindexed token.

        >>> LexicalIndex.build(["Kowalski wurde verurteilt."], ["a"]).near_forms("kowalskis")
        ['kowalski']
        """
        return [w for w in self._by_head.get(token[:5], ()) if near_form(w, token)]

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` best (id, BM25 score) pairs; only documents sharing a word with the query."""
        toks = tokenize(query)
        toks += [p for t in toks for p in compound_parts(t, self._vocabulary)]
        toks += [w for t in toks if t not in self._bm25.vocab_dict for w in self.near_forms(t)]
        known = list(dict.fromkeys(t for t in toks if t in self._bm25.vocab_dict))
        if not known or n <= 0:
            return []
        scores = self._bm25.get_scores(known)
        n = min(n, int(np.count_nonzero(scores)))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top]
