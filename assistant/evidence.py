"""Evidence first: which sentences answer a question, and whether the text answers it at all.

The answer path chooses its evidence before any model runs, so the extractive answer and the
model's answer stand on the same sentences. Everything here is pure and language-general
(German and English grammar, no knowledge of any one document):

- :func:`analyse` reads what a question asks for (a yes/no verdict, a number, a date).
- :func:`select_evidence` takes the best sentence and the neighbours it leans on ("Deswegen …"
  needs the sentence before it, "Außerdem …" continues a list), plus a second sentence when the
  question names something the first does not (two-fact questions).
- :class:`Vocabulary` knows every word of the corpus, so a question about a thing the text never
  names ("Kommandant", "Reichsmark") can be told apart from one that uses the text's words.
- :func:`verdict` derives Ja/Nein from the polarity of the evidence, with negation carried by
  particles ("nicht", "keine") and by verbs of refusal ("lehnten … ab", "verboten").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .chunking import Chunk, Span
from .corpus import split_sentences
from .lexical import ASKING, W_WORDS, tokenize
from .settings import Settings

_PREPOSITIONS = set(
    """in im an am auf aus bei mit nach von vom vor zu zum zur unter über durch für gegen ohne um
    seit zwischen bis ab on at from by with for to under since during between während laut gemäß
    trotz wegen außer neben within among als as""".split()
)
# Words that open a question without being its verb: a preposition ("Mit wem …"), a request
# ("Nenne …"), a phrase set before it ("Before 1891, did …?").
_OPENERS = _PREPOSITIONS | set(
    """nenne nennen nenn erkläre erklär beschreibe beschreib gib zähle liste name list explain describe
    tell give bevor nachdem seitdem before after according besides despite following prior apart""".split()
)
# A short question that opens with an article and holds no verb is a fragment ("Und der andere?",
# "And the other one?"), not a yes/no question.
_ARTICLES = {"der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "eines", "the", "a", "an"}
_PREPOSITION_ALTERNATION = "|".join(sorted(_PREPOSITIONS))
# Nouns that speak about the text itself, never a topic ("die Angabe", "the statement").
ABOUT_THE_TEXT = set(
    """aussage aussagen angabe angaben behauptung information informationen satz abschnitt text stelle
    beleg belege quelle quellen frage antwort einleitung absatz kapitel statement claim source passage sentence
    introduction paragraph chapter section artikel article dokument document""".split()
)
# "Laut dem Artikel …", "according to the text …": the document named as the source, not a topic.
ACCORDING_TO = re.compile(r"\b(?:laut|gemäß|according\s+to)\s+(?:dem\s+|the\s+)?(?:artikel|text|article)\b", re.IGNORECASE)
# "Was berichtet der Artikel über …", "What does the text say about …": the document speaking, and
# what is asked is all it says about something.
_DOCUMENT_SPEAKS = re.compile(
    r"\b(?:berichtet|sagt|schreibt|erwähnt|erzählt|does|do)\s+(?:der|die|das|the)\s+(?:artikel|text|article)"
    r"(?:\s+(?:say|mention|report|state|tell))?\b"
    r"|\b(?:der|the)\s+(?:artikel|text|article)\s+(?:berichtet|sagt|schreibt|erwähnt|says|mentions|reports|states|tells)\b",
    re.IGNORECASE,
)
# Words after a question word that end the answer-type phrase ("Wer *war* der …", "Wie *viele* …").
_VERBISH = set(
    """war waren ist sind wurde wurden hat hatte hatten haben wird werden kam kamen gab machte machten
    viele viel hoch alt lange oft was were is are did does do has had""".split()
)
_CONJUNCTIONS = {"und", "aber", "also", "and", "but", "so", "oder", "or"}
# English "Was the …?" opens a yes/no question; German "Was" (what) is never followed by these words.
_ENGLISH_WAS = re.compile(r"\bwas\s+(?:the|a|there|it|he|she|this|that|these|those|his|her|their|its)\b", re.IGNORECASE)
# Question words that ask for a reason, a way or a consequence: the sentence that goes on from the
# best one ("Um das zu vermeiden …", "Darum …") often gives it.
_REASON_WORDS = {"warum", "wieso", "weshalb", "wodurch", "womit", "wie", "why", "how"}
_NAME_ASKED = re.compile(r"(?:wie|how)\s+(?:hie(?:ß|ss)\w*|hei(?:ß|ss)\w*|lautet\w*|nannte\w*|nennt\w*|is\s+\w+\s+called|was\s+\w+\s+called)\b", re.IGNORECASE)
_CONSEQUENCE = re.compile(r"\b(?:folgte|folgten|geschah|passierte|happened|followed|result\w*|folge(?:n|rung\w*)?|consequen\w*)\b", re.IGNORECASE)
_ENTITY_WORDS = {"wer", "wen", "wem", "wessen", "wo", "who", "whom", "whose", "where"}
# "In welcher Stadt …", "An welchem Ort …", "Which town …": a place is asked for by name, as by
# "wo"; the noun is the kind of answer, not the topic.
_PLACE_ASKED = re.compile(
    r"(?i:welche[mnrs]?|which|what)\s+(?:(?!(?i:was|were|is|are|did|does|do|has|had)\b)[\wäöüß-]+\s+)?"
    r"(?i:(stadt|städten?|ort|orten?|ortschaft(?:en)?|dorf|dörfern?|city|cities|towns?|villages?))\b"
)
_ONE_PLACE = {"stadt", "ort", "ortschaft", "dorf", "city", "town", "village"}
# A town named in a text: after a preposition of place without an article ("in Neustadt", "near
# Altdorf"), as a neuter with an adjective ("im sächsischen Neustadt": town names are neuter), or
# after the word for a town ("die Stadt Neustadt", "the town of Altdorf"). A name with an article
# is a region or a country that takes one ("in der Schweiz"), or a noun ("in der Schule"). Loose on
# purpose: a noun in the same places ("aus Spenden", "im folgenden Jahr") counts too, so such
# evidence is judged as before; what no form here finds names no town.
_TOWN_NAMED = re.compile(
    r"\b(?i:in|nach|bei|nahe|unweit|aus|near|at|to|from)\s+([A-ZÄÖÜ][\w-]+)"
    r"|\b(?i:im|ins|vom|zum|beim)\s+[a-zäöüß]+en\s+([A-ZÄÖÜ][\w-]+)"
    r"|\b(?i:stadt|ortschaft|dorf|gemeinde|city|town|village)\s+(?:of\s+)?([A-ZÄÖÜ][\w-]+)"
)
# Nouns that stand after a preposition without an article in set phrases ("nach Hause", "in Kraft",
# "zu Beginn", "at Home"): no town.
_SET_PHRASE_NOUNS = {"hause", "haus", "home", "kraft", "beginn", "anfang", "ende", "betrieb", "frage", "gang",
                     "angaben", "folge", "zukunft", "zeiten", "sicht", "gründen"}
# Words that open a question framed as a request ("Kannst du mir sagen, wo …?", "I'd like to know
# which …"): with a question word after them, the question is that one, not a yes/no question.
_FRAMES = set(
    """kannst können könnten könntest kann weißt wisst wissen weiß sag sagt sagen ich möchte würde würdest
    bitte verrate verrat can could would will do tell please i know""".split()
)
# The question words as one regex alternation, longest first ("welchem" before "welche").
W_ALTERNATION = "|".join(sorted(W_WORDS, key=len, reverse=True))
_W_PATTERN = re.compile(rf"\b(?:{W_ALTERNATION})\b", re.IGNORECASE)
# Where a further question begins in one sentence: ", wer …", "und wann …", "und in welchen …", "and what …".
# (A preposition only after "und": ", in welcher …" opens a relative clause.)
_NEXT_PART = re.compile(
    rf"(?:,|\b(?:und|and|oder|or))\s+(?:{W_ALTERNATION})\b"
    rf"|\b(?:und|and|oder|or)\s+(?:{_PREPOSITION_ALTERNATION})\s+(?:{W_ALTERNATION})\b",
    re.IGNORECASE,
)
# The question word that follows such a frame's verb of knowing or telling ("sagen, wo", "know which",
# "tell me who"); a relative clause after a comma ("Could Norway, which …, build bridges?") is not one.
_FRAMED = re.compile(
    rf"\b(?:me|us|mir|uns|know|wonder|wissen|weiß|weißt|wisst|sagen|sag|erklären|erkläre|verraten|verrate)"
    rf"(?:\s+(?:du|ihr|sie))?\s*,?\s+(?:(?:{_PREPOSITION_ALTERNATION})\s+)?(?:{W_ALTERNATION})\b",
    re.IGNORECASE,
)
_EXPECTS_NUMBER = re.compile(
    r"\b(?:wie\s*viel\w*|wie\s+hoch|wie\s+alt|wie\s+groß|wie\s+oft|wie\s+lange?|wie\s+teuer"
    r"|how\s+(?:many|much|old|long|often|large|big))\b",
    re.IGNORECASE,
)
# A word of exactness between the question word and the date it asks for ("what exact date", "welchem genauen Tag").
_EXACTLY = r"(?:(?:exact|precise|specific|genaue[mns]?|exakte[mns]?)\s+)?"
_EXPECTS_DATE = re.compile(
    rf"\b(?:wann|welche[mnrs]?\s+{_EXACTLY}(?:jahr|tag|datum|monat)\w*|when|(?:what|which)\s+{_EXACTLY}(?:year|date|day|month))\b", re.IGNORECASE
)
_NUMBER_WORDS = re.compile(
    r"\d|\b(?:zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|\w+zig|hundert\w*|tausend\w*|"
    r"million\w*|milliard\w*|dutzend\w*|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+ty|"
    r"hundreds?|thousands?|millions?|billions?|dozens?)\b",
    re.IGNORECASE,
)
# "Genau wie viele …", "the exact number": an amount the text gives only roughly does not answer.
_EXACT = re.compile(r"\b(?:genau\w*|exakt\w*|exact\w*|precise\w*)\b", re.IGNORECASE)
# A rough amount: a number after a word of approximation ("mehrere hundert", "etwa 1200", "more than
# 100"), or a count in the plural ("Hunderte", "thousands").
_ROUGHLY = re.compile(
    r"\b(?:mehrere|einige|etliche|viele|zahlreiche|etwa|rund|ungefähr|circa|ca\.|knapp|über|fast|nahezu"
    r"|mehr\s+als|weniger\s+als|bis\s+zu|several|some|many|about|around|approximately|roughly|nearly|almost"
    r"|over|under|more\s+than|less\s+than|fewer\s+than|up\s+to)\s+(?:\d[\d.,]*|\w+)"
    r"|\b(?:hundert(?:e|en)|tausend(?:e|en)|dutzend(?:e|en)|hundreds|thousands|dozens)\b",
    re.IGNORECASE,
)
_MONTHS = ("januar|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember"
           "|january|february|march|may|june|july|october|december")
_YEAR_DIGITS = "1[0-9]{3}|20[0-9]{2}"  # a year of the second millennium or this century
_DATE = re.compile(rf"\b(?:{_YEAR_DIGITS})\b|\b(?:{_MONTHS})\b", re.IGNORECASE)
_EXPECTS_DAY = re.compile(
    rf"\b(?:welche[mnrs]?\s+{_EXACTLY}(?:tag|datum)|genaue[mns]?\s+(?:datum|tag)|(?:what|which)\s+{_EXACTLY}(?:day|date)|exact\s+date)\b",
    re.IGNORECASE,
)
_EXPECTS_MONTH = re.compile(r"\b(?:welche[mnrs]?\s+monat\w*|(?:what|which)\s+month)\b", re.IGNORECASE)
_DIGIT_DATE = r"\b\d{1,2}\.\d{1,2}\.\d{2,4}\b"  # "3.5.1891"
# A month named (capitalised, so not the modal "may") or a date in digits.
_MONTH = re.compile(rf"\b(?:{_MONTHS.title()})\b|{_DIGIT_DATE}")
_DAY_DATE = re.compile(
    rf"\b\d{{1,2}}\.\s*(?:{_MONTHS})\b|\b(?:{_MONTHS})\s+\d{{1,2}}\b|\b\d{{1,2}}\s+(?:{_MONTHS})\b|{_DIGIT_DATE}",
    re.IGNORECASE,
)
# Verbs and nouns of prohibition: a denial, but one that a question about breaking a rule agrees with.
_PROHIBITION = r"verbot\w*|verbiet\w*|untersag\w*|forb[ia]d\w*|prohibit\w*|banned"
# Negation carried by particles and pronouns, or by verbs and nouns of refusal and prohibition.
NEGATION = re.compile(
    r"\b(?:nicht|kein\w*|nie|niemals|weder|nichts|not|no|never|neither|nor|none|nothing)\b|n't\b"
    rf"|\b(?:lehnt\w*|abgelehnt\w*|ablehn\w*|verweiger\w*|scheitert\w*|gescheitert|{_PROHIBITION}"
    r"|refus\w*|reject\w*|denied|declined)\b",
    re.IGNORECASE,
)
# Connectives that turn from the sentence before without naming anything of it.
_CONTRAST_WORDS = "stattdessen|trotzdem|dennoch|instead|however"
_CONTRASTS = re.compile(rf"^(?:{_CONTRAST_WORDS})\b", re.IGNORECASE)
# A question about what came first, which a contrast turned from.
_ASKS_EARLIER = re.compile(r"\b(?:first|originally|initially|before|zunächst|zuerst|ursprünglich|anfangs|vorher|instead of|statt)\b", re.IGNORECASE)
# A sentence that cannot stand alone: it starts with a causal or contrastive connective or a pronoun.
_LEANS_BACK = re.compile(
    rf"^(?i:deswegen|deshalb|daher|darum|dadurch|somit|folglich|{_CONTRAST_WORDS}|dabei|daraufhin"
    r"|er|sie|es|ihr|sein|seine|ihre|beide|therefore|thus|hence|consequently|he|she|it|they"
    r"|his|her|their|both)\b"
    r"|^(?:(?i:um|trotz|wegen|nach|vor|durch|mit|für|bei|aus)\s+)?(?i:das|dies\w*|jene\w*|this|these|that)\s+[a-zäöü]"
    r"|^(?i:der|die|das|the)\s+\w+\s+(?i:selbst|itself|themselves)\b"  # "Die Schule selbst …": the one just named
)
# A place or a thing named in the sentence before, pointed at ("Die dortige Schule …", "stand
# darin"): the sentence does not say which without it.
_POINTING = r"dort|dortige\w*|darin|there|therein"
_POINTS_BACK = re.compile(rf"\b(?:{_POINTING})\b", re.IGNORECASE)
# Words by which a sentence refers back to the one before it wherever they stand (those pointing,
# "Lehren aus diesen Versuchen …", "gleichzeitig").
_REFERS_BACK = re.compile(
    rf"\b(?:{_POINTING}|dabei|daraufhin|damals|gleichzeitig|zugleich|diese[nmrs]?|these|those|meanwhile|simultaneously)\b",
    re.IGNORECASE,
)
# A sentence that continues the one before it (a list, an addition).
_CONTINUES = re.compile(
    r"^(?:außerdem|zudem|ferner|darüber hinaus|weiterhin|ebenso|auch|moreover|furthermore|in addition|additionally|also)\b",
    re.IGNORECASE,
)
MAX_EVIDENCE = 3  # sentences per answer, one more per later part of a question and one more for a
# sentence a chosen one leans on (set with evidence-first answers, 4d5dead; not tuned since)


@dataclass(frozen=True)
class Asked:
    """What a question asks for."""

    text: str
    tokens: frozenset[str]
    yes_no: bool
    number: bool
    date: bool
    negated: bool
    day: bool = False  # the date asked for is a day ("an welchem Tag", "exact date"), not a year
    month: bool = False  # the date asked for is a month ("in welchem Monat"), not a year
    overview: bool = False  # what the document says about something ("Was berichtet der Artikel über …")
    entity: bool = False  # a person or a place is asked for ("Wer …", "Wo …"), a slot a sentence fills or not
    town: bool = False  # one town or place by name ("In welcher Stadt …", "Which village …")
    parts: tuple[str, ...] = ()  # the later questions of several in one ("Wer war dafür, und wie reagierte …?")
    reason: bool = False  # a reason, a way or a consequence ("Warum …", "Wie reagierte …", "Was folgte daraus …")
    exact: bool = False  # the number asked for is an exact one ("Wie viele genau …", "the exact number")


def analyse(question: str, lang: str = "") -> Asked:
    """Read a question's form: yes/no, a number or a date expected, a reason or a person asked
    for, negated or not. Of several sentences the last one asks ("The text names two treaties.
    Did either …?"); ``lang`` ("en") reads an opening "was" as the English verb whatever follows.

    >>> a = analyse("Enthielt der Vertrag von Altdorf Bestimmungen zum Brückenzoll?")
    >>> a.yes_no, a.number, a.date
    (True, False, False)
    >>> b = analyse("Und wie viele Lehrlinge wurden ausgebildet?")
    >>> b.yes_no, b.number
    (False, True)
    >>> analyse("When was the treaty signed?").date, analyse("Nenne die Orte.").yes_no
    (True, False)
    >>> analyse("An welchem Tag im Jahr 1900 endete sie?").date, analyse("Zu wie vielen Tagen Arrest?").number
    (True, True)
    >>> [(a.date, a.day) for a in map(analyse, ["On what exact date did it end?", "An welchem genauen Tag endete sie?"])]
    [(True, True), (True, True)]
    >>> sorted(analyse("Was berichtet der Artikel über die Gärtnerschule?").tokens)
    ['gartnerschul']
    >>> c = analyse("Kannst du mir sagen, wann der Vertrag geschlossen wurde?")
    >>> c.yes_no, c.date, analyse("Can you tell me whether it was signed?").yes_no
    (False, True, True)
    >>> [analyse(q).yes_no for q in ["Could Norway, which was poor, build bridges?",
    ...     "Before 1891, did the guild train apprentices?", "Before the treaty, which town was chosen?"]]
    [True, True, False]
    >>> [analyse(q).yes_no for q in ["Mit wem wollte sie handeln, und worauf lief es hinaus?", "Als was galt er?",
    ...     "Kannst du mir sagen, an welchem Tag er kam?", "Und der andere?", "In which book, and when?",
    ...     "The text names two treaties. Did either say so?", "Er kam 1891. Wer schickte ihn?"]]
    [False, False, False, False, False, True, False]
    >>> [analyse(q).exact for q in ["Wie viele waren es? Ich brauche die genaue Zahl.", "Genau. Und wie viele waren es?"]]
    [True, False]
    >>> analyse("Weißt du was? Ich möchte wissen, wie viele Piloten dort ausgebildet wurden.").number
    True
    >>> [analyse(q).yes_no for q in ["Kam das z. B. der Gemeinde zugute?", "Der Vertrag wurde also unterzeichnet?"]]
    [True, True]
    >>> analyse("Was Kowalski against it?", "en").yes_no, analyse("Was Kowalski against it?").yes_no
    (True, False)
    >>> [analyse(q).yes_no for q in ["Was the treaty signed in 1891?", "And was it signed?", "Was regelte der Vertrag?", "Was an den Vertrag erinnert?"]]
    [True, True, False, False]
    >>> analyse("According to the article, when was it signed?").overview
    False
    >>> analyse("Welche Zeitungen berichteten, und in welchen Jahren erschienen sie?").parts
    ('und in welchen Jahren erschienen sie?',)
    >>> analyse("Wie hieß die Schule, in welcher Lehrlinge lernten?").parts
    ()
    >>> [analyse(q).reason for q in ["Wie reagierte er?", "Wie hieß er?", "Was folgte daraus?", "Was regelte er?"]]
    [True, False, True, False]
    >>> [analyse(q).entity for q in ["Wer leitete die Schule?", "Where was it?", "Warum?", "Kannst du sagen, wer es war?"]]
    [True, True, False, True]
    >>> [analyse(q).entity for q in ["In welcher kleinen Stadt lag sie?", "Which town was chosen?", "Welche Orte?", "Welche Ortskräfte?"]]
    [True, True, True, False]
    >>> sorted(analyse("An welchem Ort wurde gebaut?").tokens)
    ['gebaut']
    >>> [analyse(q).town for q in ["In welcher kleinen Stadt lag sie?", "Welche Orte?", "Which village was it?"]]
    [True, False, True]
    >>> [analyse(q).town for q in ["Wer war es, welcher die Stadt lenkte?", "What did towns do?", "In which Norwegian town?"]]
    [False, False, True]
    """
    asking = question.strip()
    # The last question asks, not a request after it that asks nothing ("Wie viele …? Ich brauche
    # die genaue Zahl."); one that asks is the question ("Weißt du was? Ich möchte wissen, wie viele …").
    sentences = split_sentences(asking)
    questions = [i for i, s in enumerate(sentences) if s.text.rstrip().endswith("?")]
    if questions and not any(_W_PATTERN.search(s.text) for s in sentences[questions[-1] + 1:]):
        sentences = sentences[: questions[-1] + 1]
    if len(sentences) > 1 and len(_words(sentences[-1].text)) >= 3:
        asking = sentences[-1].text
    start = max(question.find(asking), 0)
    words = _words(asking)
    first = words[0] if words else ""
    # An opening "was" is the verb in English ("Was the treaty signed?"), German "what" otherwise.
    was_at = re.search(r"\bwas\b", asking, re.IGNORECASE) if first == "was" else None
    english_was = bool(was_at) and (lang == "en" or bool(_ENGLISH_WAS.match(asking, was_at.start())))
    if first in _OPENERS and len(words) > 1 and words[1] in W_WORDS:  # "Mit wem …", "In which …"
        first = words[1]
    elif first in _OPENERS and "," in asking:  # "Before 1891, did …?": the question starts after the phrase
        first = (_words(asking.split(",", 1)[1]) or [first])[0]
    # What is asked for is decided by the first question word ("Wer … und wann?" asks for a person).
    first_w = _W_PATTERN.search(question, start + (was_at.end() if english_was else 0))
    fragment = first in _ARTICLES and len(words) <= 4 and not _VERBISH & set(words)
    yes_no = (
        bool(first) and question.rstrip().endswith("?") and (english_was or first not in W_WORDS)
        and first not in _OPENERS and not fragment and not (first in _FRAMES and _FRAMED.search(asking))
    )
    # A number or a date is *the* thing asked only in a one-part question ("Wie lange …, und wodurch …?" is two).
    starts = [m.start() for m in _NEXT_PART.finditer(question) if first_w and m.start() > first_w.start()]
    two_part = bool(starts)
    asked_part = question[first_w.start():] if first_w and not two_part else ""
    # "Wie viele", "how long", "wie hieß" ask for a value or a name; "was", "what" ask for a
    # consequence only with a verb that says so ("Was folgte daraus …").
    w = first_w.group().lower() if first_w else ""
    at = first_w.start() if first_w else 0
    place = _PLACE_ASKED.match(question, at) if first_w and not two_part else None
    town = bool(place) and place.group(1).lower() in _ONE_PLACE
    number = bool(_EXPECTS_NUMBER.match(asked_part))
    reason = (w in _REASON_WORDS and not _EXPECTS_NUMBER.match(question, at) and not _NAME_ASKED.match(question, at)) or (
        w in ("was", "what") and bool(_CONSEQUENCE.search(question)))
    return Asked(
        text=question,
        # Not the kind of answer asked for ("… für ein Gebäude?"), which the text need not say.
        tokens=frozenset(tokenize(_DOCUMENT_SPEAKS.sub(" ", ACCORDING_TO.sub(" ", question)))) - ASKING
        - frozenset(tokenize(" ".join([*kind_asked(question), place.group(1) if place else ""]))),
        yes_no=yes_no,
        number=number,
        exact=number and bool(_EXACT.search(question, start)),
        date=bool(_EXPECTS_DATE.match(asked_part)),
        negated=bool(NEGATION.search(question)),
        day=bool(asked_part and _EXPECTS_DAY.search(question)),
        month=bool(asked_part and _EXPECTS_MONTH.search(question)),
        entity=not yes_no and (w in _ENTITY_WORDS or bool(place)),
        town=not yes_no and town,
        parts=tuple(question[a:b].strip(" ,–-") for a, b in zip(starts, [*starts[1:], len(question)])),
        reason=reason and not yes_no,
        overview=bool(_DOCUMENT_SPEAKS.search(question)),
    )


def _words(text: str) -> list[str]:
    """The words after any opening conjunction ("Und …", "And …"), lower-cased."""
    words = re.findall(r"\w+", text.lower())
    while words and words[0] in _CONJUNCTIONS:
        words = words[1:]
    return words


# Words that point back into a conversation: a question holding one needs its history.
_ANAPHORA = re.compile(
    r"\b(?:er|sie|es|ihm|ihn|ihr|ihre\w*|sein|seine\w*|dort|dorthin|damals|dabei|darin|davon|dazu|daran|darauf"
    r"|darüber|dafür|dagegen|danach|dessen|deren|diese\w*|jene\w*|dieselbe\w*|derselbe|he|she|it|they|him|her"
    r"|them|his|their|its|there|then|that|this|these|those)\b",
    re.IGNORECASE,
)


def stands_alone(question: str) -> bool:
    """A question that names what it asks about: no pronoun or "dort" to resolve, not a fragment
    ("Und wie viele?"), so a follow-up needs no rewrite by the model.

    >>> stands_alone("Wer war der Sekretär von Anna Berger?"), stands_alone("Und warum hatte er Zweifel?")
    (True, False)
    >>> stands_alone("Und wie viele?"), stands_alone("Where were the Norwegian apprentices trained?")
    (False, True)
    >>> stands_alone("Wie hieß der Autor?"), stands_alone("Wie hieß der Autor des Artikels von 1898?")
    (False, True)
    """
    words = re.findall(r"[\wÄÖÜäöüß]+", question)
    if not words or words[0].lower() in _CONJUNCTIONS or _ANAPHORA.search(question):
        return False
    return len(set(tokenize(question)) - ASKING) >= 2


def negated(text: str) -> bool:
    """Whether a sentence denies something, by a particle or by a verb of refusal.

    >>> negated("Ein Angebot lehnten die Bauern ab."), negated("Das Baden war verboten.")
    (True, True)
    >>> negated("Sie wollten ihre Mühle aufbauen.")
    False
    """
    return bool(NEGATION.search(text))


# Going on and ending deny each other: "Lief es weiter?" is answered no by "… beendete es". Only
# verbs of going on count ("weitergeben" passes something on), and an ending, not one that came later.
# A separable verb's particle closes its clause ("setzte die Arbeit fort.", "hörte damit auf,").
_PARTICLE_ENDS_CLAUSE = r"(?=\s*(?:[,.;:?!]|$))"
_GOES_ON = re.compile(
    r"\b(?:lief|liefen|läuft|laufen|ging|gingen|geht|gehen|bestand|bestanden|besteht|bestehen)\b[^.;?!]*\bweiter\b"
    r"|\bweiter(?:lauf|lief|ging|geh|bestand|besteh|gelaufen|gegangen|bestanden)\w*"
    rf"|\b(?:setzt|setzte|setzten|setzen|führt|führte|führten|führen)\b[^.;?!]*\bfort{_PARTICLE_ENDS_CLAUSE}"
    r"|\b(?:fortgesetzt|fortgeführt|fortsetz\w*|fortführ\w*|continu\w*|go(?:es|ne)?\s+on|went\s+on|carr(?:y|ied)\s+on"
    r"|kept\s+going)\b",
    re.IGNORECASE,
)
_ENDS_IT = re.compile(r"\b(?:beende\w*|beendigt\w*|endete\w*|aufgelöst|abgebrochen|eingestellt|aufgehört|aufhör\w*"
                      rf"|(?:hörte|hörten|hört)\b[^.;?!]*\bauf{_PARTICLE_ENDS_CLAUSE}|ended(?!\s+up)|stopp?\w*|ceased"
                      r"|terminated|discontinued|halted|came\s+to\s+an\s+end)\b", re.IGNORECASE)
_PROHIBITS = re.compile(rf"\b(?:{_PROHIBITION})\b", re.IGNORECASE)
# Asking whether something was allowed: what a prohibition denies. Whether it happened ("Gab es
# Türme?", "Wurden Türme gebaut?") it does not: what was forbidden may have been done all the same.
_PERMISSION = re.compile(rf"\b(?:durft\w*|dürf\w*|darf|erlaub\w*|zulässig\w*|gestatt\w*|legal\w*|{_PROHIBITION}|bans?"
                         r"|könn\w*|konnt\w*|allow\w*|permi(?:t|ss)\w*|lawful|may|can|could)\b", re.IGNORECASE)
# Breaking a rule: "Verstieß das gegen den Vertrag?" is not denied by "… war verboten".
_BREACHES = re.compile(r"\b(?:verst(?:o|ie)(?:ß|ss)\w*|verletzte\w*\s+(?:den|die|das|eine?n?)\b|gebrochen|brach(?:en)?\s+(?:den|die|das|eine?n?)\b"
                       r"|illegal\w*|unerlaubt\w*|unzulässig\w*|violat\w*|breach\w*|broke(?!\s+(?:off|out|up|down))"
                       r"|break(?:s|ing)?(?!\s+(?:off|out|up|down))|contraven\w*|unlawful)\b", re.IGNORECASE)


def _turns(question: str, sentence: str) -> bool:
    """The question asks about going on and the sentence says only that it ended, or the other way round."""
    asks_on, asks_end = bool(_GOES_ON.search(question)), bool(_ENDS_IT.search(question))
    says_on, says_end = bool(_GOES_ON.search(sentence)), bool(_ENDS_IT.search(sentence))
    return (asks_on and not asks_end and says_end and not says_on) or (asks_end and not asks_on and says_on and not says_end)


# A verdict word opening an answer ("Ja, …", "No.", not "No one …").
VERDICT_OPENING = re.compile(r"^\W*(ja|nein|yes|no)\b(?!\s+one\b)[\s,.!:;-]*", re.IGNORECASE)


def opening_verdict(text: str) -> str | None:
    """``"ja"``/``"nein"`` when the text opens with a verdict word.

    >>> [opening_verdict(t) for t in ["Nein, der Vertrag galt nicht.", "Yes. It did.", "In Neustadt.", "No one came."]]
    ['nein', 'ja', None, None]
    """
    found = VERDICT_OPENING.match(text)
    return None if not found else "ja" if found.group(1).lower() in ("ja", "yes") else "nein"


def verdict(asked: Asked, best: str) -> str | None:
    """``"ja"``/``"nein"`` for a yes/no question from the polarity of its best evidence sentence.

    Only a denial is conclusive: without one the text may answer in other words (an antonym), so
    the result is ``"ja"`` only as a hint for checking a model's verdict. Asked whether something
    went on, a sentence saying it ended denies it, and the other way round; asked whether something
    broke a rule, a sentence saying it was forbidden does not.

    >>> verdict(analyse("Enthielt der Vertrag Bestimmungen?"), "Der Vertrag enthielt keine Bestimmungen.")
    'nein'
    >>> verdict(analyse("Wurde Norwegen erwogen?"), "Zunächst wurde Norwegen erwogen.")
    'ja'
    >>> [verdict(analyse(q), "Nach der Wahl beendete die Stadt das Projekt.") for q in ["Lief das Projekt nach der Wahl weiter?",
    ...     "Wurde das Projekt beendet?", "Did the project continue?"]]
    ['nein', 'ja', 'nein']
    >>> verdict(analyse("Did the project go on?"), "The city did not stop the project.")
    'ja'
    >>> [verdict(analyse(q), "Die Stadt beendete das Projekt.") for q in ["Gab es weitere Projekte?", "Gab die Stadt es weiter?"]]
    ['ja', 'ja']
    >>> [verdict(analyse(q), "Nach der Wahl beendete die Stadt das Projekt.") for q in ["Setzte die Stadt das Projekt fort?",
    ...     "Führten sie es nach der Wahl fort?", "Setzte sie einen Termin fest?"]]
    ['nein', 'nein', 'ja']
    >>> [verdict(analyse("Lief das Projekt nach der Wahl weiter?"), s) for s in ["Nach der Wahl hörte die Stadt mit dem Projekt auf.",
    ...     "Nach der Wahl hörte die Stadt auf den Rat."]]
    ['nein', 'ja']
    >>> verdict(analyse("Lief das Projekt weiter?"), "Das Projekt lief weiter, bis die Stadt es beendete.")  # both: no turn
    'ja'
    >>> [verdict(analyse(q), "Der Stadt war der Bau von Türmen verboten.") for q in ["Verstieß der Bau von Türmen gegen die Regel?",
    ...     "Durfte die Stadt Türme bauen?", "Did building towers break the rules?", "Gab es auch Türme?", "War der Bau verboten?",
    ...     "Did the rules allow towers?", "Might they have built towers?"]]
    ['ja', 'nein', 'ja', 'ja', 'ja', 'nein', 'ja']
    >>> verdict(analyse("Verstieß der Bau gegen die Regel?"), "Der Bau war nicht verboten.")
    'nein'
    """
    if not asked.yes_no or not best:
        return None
    # "verboten" says yes to a breach and nothing to whether it happened; a "nicht" still denies
    if _BREACHES.search(asked.text) or not _PERMISSION.search(asked.text):
        best = _PROHIBITS.sub(" ", best)
    return "nein" if negated(best) != (asked.negated != _turns(asked.text, best)) else "ja"


def has_number(text: str) -> bool:
    return bool(_NUMBER_WORDS.search(text))


def has_date(text: str) -> bool:
    return bool(_DATE.search(text))


def fits_type(asked: Asked, evidence: Iterable[str]) -> bool:
    """The evidence holds the kind of value asked for: a number for "how many", a date for "when".

    >>> fits_type(analyse("Wie viele Brücken wurden gebaut?"), ["Brücken wurden geplant."])
    False
    >>> fits_type(analyse("Wie viele Lehrlinge?"), ["Einige hundert Lehrlinge."])
    True
    >>> fits_type(analyse("Wie viele Bücher gab es 1908?"), ["1908 zog die Bibliothek um."])
    False
    >>> fits_type(analyse("How much did it cost each year?"), ["It lasted from 1891 to 1900."])
    False
    >>> fits_type(analyse("Wie viele Soldaten waren dort?"), ["Etwa 1200 Soldaten waren dort."])
    True
    >>> exact = analyse("Wie viele Lehrlinge genau? Ich brauche die exakte Zahl.")
    >>> [fits_type(exact, [t]) for t in ["Mehrere hundert Lehrlinge.", "More than 100 came.", "Hunderte kamen.", "Es waren 212."]]
    [False, False, False, True]
    >>> fits_type(analyse("Um wie viel Geld ging es?"), ["Es folgte der Vertrag von Altdorf 1891."])
    False
    >>> fits_type(analyse("Wie alt war er damals?"), ["Er suchte in den 1890er Jahren Partner."])
    False
    >>> day = analyse("An welchem Tag endete sie?")
    >>> fits_type(day, ["Sie bestand von 1891 bis 1900."]), fits_type(day, ["Sie endete am 3. Mai 1900."])
    (False, True)
    >>> month = analyse("In what month of 1891 did it open?")
    >>> fits_type(month, ["It opened in 1891."]), fits_type(month, ["Im Mai 1891 wurde sie eröffnet."])
    (False, True)
    """
    # A number or date the question itself names ("… im Jahr 1908?") is not the one asked for.
    joined = " ".join(evidence)
    for given in re.findall(r"\d+", asked.text):
        joined = re.sub(rf"\b{given}\b", " ", joined)
    if asked.exact:  # asked for an exact number, a rough one ("mehrere hundert") does not answer
        joined = _ROUGHLY.sub(" ", joined)
    # A year is a date, not an amount: it answers "how many" only when years are what is counted.
    if asked.number and not has_number(joined if years_asked(asked.text) else _YEAR_AS_DATE.sub(" ", joined)):
        return False
    if asked.day and not _DAY_DATE.search(joined):  # asked for the day, a year does not answer
        return False
    if asked.month and not _MONTH.search(joined):  # nor for the month
        return False
    return not (asked.date and not has_date(joined))


def towns_named(asked: Asked, evidence: Iterable[str]) -> list[str]:
    """The towns the evidence names (as :data:`_TOWN_NAMED` finds them) that the question does not.

    >>> asked = analyse("In welcher Stadt wurden die Lehrlinge ausgebildet?")
    >>> towns_named(asked, ["Die Lehrlinge wurden in Neustadt ausgebildet."])
    ['Neustadt']
    >>> towns_named(asked, ["Die Ausbildung fand an folgenden Orten in der Schweiz statt:", "Sie gingen nach Hause."])
    []
    >>> towns_named(asked, ["Sie lernten im sächsischen Altdorf.", "Sie lernten in der Stadt Neustadt.", "Die Schule lag nahe Birkenau."])
    ['Altdorf', 'Neustadt', 'Birkenau']
    >>> towns_named(analyse("Which town near Altdorf was chosen?"), ["It was built near Altdorf."])
    []
    """
    asked_words = set(tokenize(asked.text))
    found = [next(g for g in m.groups() if g) for text in evidence for m in _TOWN_NAMED.finditer(text)]
    return list(dict.fromkeys(name for name in found if (t := tokenize(name)) and not set(t) & asked_words
                              and name.lower() not in _SET_PHRASE_NOUNS))


class Vocabulary:
    """Every normalised word of a corpus, with prefix and suffix look-ups for compounds and inflection.

    >>> v = Vocabulary(["Die Gärtnerschule lag in Neustadt.", "Kowalski wurde verurteilt."])
    >>> [v.knows(t) for w in ["Gärtnerschulen", "Schule", "Kowalskis", "Kommandant"] for t in tokenize(w)]
    [True, True, True, False]
    """

    MIN = 4

    def __init__(self, texts: Iterable[str]) -> None:
        self.words = {t for text in texts for t in tokenize(text)}
        self.prefixes = {w[:i] for w in self.words for i in range(self.MIN, len(w) + 1)}
        self.suffixes = {w[-i:] for w in self.words for i in range(self.MIN, len(w) + 1)}

    def knows(self, token: str) -> bool:
        """Whether a normalised token (as :func:`tokenize` gives it) occurs, inflected or in a compound."""
        if token in self.words or token.isdigit():
            return True
        if len(token) < self.MIN:
            return False
        if token in self.prefixes or token in self.suffixes:
            return True
        # A longer form of a known word (inflection, or a compound made of known words).
        return any(token[:i] in self.words or token[-i:] in self.words for i in range(self.MIN, len(token)))


# "Was für Bücher …?", "Was war das Zollhaus für ein Gebäude?": the noun names the kind of answer.
_WHAT_KIND = re.compile(
    r"(?i:\bwas\s+für)\s+(?:(?i:ein|eine|einen|einem|einer)\s+)?(?:[a-zäöü][\wäöüß-]*\s+)?([A-ZÄÖÜ][\wäöüß-]*)"
    r"|(?i:\bwas\s+(?:ist|war|sind|waren|wäre|wären))(?:\s+[\wäöüß-]+){1,4}?\s+(?i:für)\s+(?:(?i:ein|eine|einen|einem|einer)\s+)?"
    r"(?:[a-zäöü][\wäöüß-]*\s+)?([A-ZÄÖÜ][\wäöüß-]*)\s*[?.!]?\s*$"
)


def kind_asked(question: str) -> set[str]:
    """The nouns a German "was … für (ein) X" question names as the kind of its answer.

    >>> kind_asked("Was war das Zollhaus denn überhaupt für ein altes Gebäude?"), kind_asked("Was für Bücher gab es?")
    ({'Gebäude'}, {'Bücher'})
    >>> kind_asked("Was waren das für Bücher?"), kind_asked("Was tat sie für eine Partei?"), kind_asked("Was tat sie für Neustadt?")
    ({'Bücher'}, set(), set())
    """
    return {m.group(1) or m.group(2) for m in _WHAT_KIND.finditer(question.strip())}


def unknown_terms(question: str, vocabulary: Vocabulary) -> list[str]:
    """Nouns and names of a German question that the corpus never uses.

    German capitalises nouns, so a capitalised word that is not the first is a noun or a name.
    The noun that names the kind of answer ("Welche *Zeitung* …", "In welchem *Land* …") is
    not a topic: the text gives the answer without using that word.

    >>> v = Vocabulary(["Die Lehrlinge wurden in Neustadt ausgebildet."])
    >>> unknown_terms("Wer war der Meister der Lehrlinge in Neustadt?", v)
    ['Meister']
    >>> unknown_terms("In welcher Stadt wurden die Lehrlinge ausgebildet?", v)
    []
    >>> unknown_terms("Wer leitete die Bäckerschule in Neustadt?", v)
    ['Bäckerschule']
    >>> unknown_terms("In welchem Zeitraum wurden Farben in Neustadt getestet?", v)
    ['Farben']
    >>> unknown_terms("Was war Neustadt denn für eine Einrichtung?", v)  # the kind of answer asked for
    []
    """
    words = re.findall(r"[\wÄÖÜäöüß-]+", question)
    kinds = kind_asked(question)
    found = []
    in_type_phrase = False  # between a question word and its noun or verb
    for i, word in enumerate(words):
        low = word.lower()
        if low in W_WORDS:
            # Only "welche …", "which …", "what …" and "wie viele …" name a kind of answer; after
            # "wer", "wo", "warum" the next noun is the topic.
            in_type_phrase = low.startswith(("welch", "which", "what", "wessen", "wie", "how"))
            continue
        if in_type_phrase:
            if word[0].isupper():  # the answer-type noun: skip it
                in_type_phrase = False
                continue
            if low in _VERBISH:
                in_type_phrase = False
            continue
        # Short words are mostly generic ("Amt", "Ende") and their stems unreliable: not evidence.
        if i == 0 or not word[0].isupper() or len(word) < 5 or low in ABOUT_THE_TEXT or word in kinds or not tokenize(word):
            continue
        if not _known(word, vocabulary):
            found.append(word)
    return found


# A name in a pre-posed genitive: "Berger's role", "Andreas' Buch", German "Bergers Amt" (without an
# apostrophe only before a noun: German puts only names there).
_POSSESSOR = re.compile(r"\b([A-ZÄÖÜ][\w-]{2,}?)(?:['’](?:s\b)?|s(?=\s+[A-ZÄÖÜ]))")


def possessors(question: str, vocabulary: Vocabulary) -> list[str]:
    """Names (or nouns) the corpus uses, asked about in a pre-posed genitive: the question is
    about them even when the thing it asks of them ("Amt", "role") is a word the text never uses.

    >>> v = Vocabulary(["Die Stadträtin Anna Berger und der Maler Paul Koch."])
    >>> possessors("Was war Bergers Amt?", v), possessors("What was Koch's position?", v), possessors("Was Koch' Bild?", v)
    (['Berger'], ['Koch'], ['Koch'])
    >>> possessors("Wer war Meiers Chef?", v), possessors("Welches Amt hatte sie?", v)
    ([], [])
    """
    return [name for name, word in ((m.group(1), m.group(0)) for m in _POSSESSOR.finditer(question))
            if word.lower().rstrip("'’") not in W_WORDS | ASKING and (tokens := tokenize(name))
            and all(t in vocabulary.words for t in tokens)]


def _known(word: str, vocabulary: Vocabulary) -> bool:
    return all(vocabulary.knows(part) for part in tokenize(word))


def coverage(asked: Asked, evidence: Iterable[str]) -> float:
    """Share of the question's content words that the evidence contains (prefix match for inflection).

    >>> coverage(analyse("Wo wurden die Lehrlinge ausgebildet?"), ["Lehrlinge wurden in Neustadt ausgebildet."])
    1.0
    """
    if not asked.tokens:
        return 0.0
    have = {t for text in evidence for t in tokenize(text)}
    return sum(1 for t in asked.tokens if _matches(t, have)) / len(asked.tokens)


def _matches(token: str, have: set[str]) -> bool:
    """The token, or one sharing its first five letters, also inside a longer word
    ("grundung" ~ "gegrundet": German participles put "ge" in front); a participle asked for
    matches its verb without the "ge" ("geregelt" ~ "regelt").

    >>> _matches("grundung", {"gegrundet"}), _matches("geregelt", {"regelt"}), _matches("gebiet", {"biet"})
    (True, True, False)
    """
    forms = [token, token[2:]] if token.startswith("ge") and len(token) >= 7 else [token]
    return any(t in have or (len(t) >= 5 and any(t[:5] in h for h in have if len(h) >= 5)) for t in forms)


@dataclass(frozen=True)
class Evidence:
    """The chosen sentences, in document order, each with its chunk."""

    items: tuple[tuple[Chunk, Span], ...]
    score: float
    best: str = ""

    @property
    def texts(self) -> list[str]:
        return [s.text for _, s in self.items]

    @property
    def cited(self) -> list[str]:
        """The Einzelnachweise behind the sentences, once each, in their order."""
        return list(dict.fromkeys(text for c, s in self.items for text in c.cited_by(s)))


class Sentences:
    """All sentences of the corpus in reading order, to find a sentence's neighbours."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        ordered = sorted(chunks, key=lambda c: (c.doc_id, c.paragraph, c.sentence))
        self.order: list[tuple[Chunk, Span]] = [(c, s) for c in ordered for s in c.spans]
        self.position = {(c.doc_id, s.start): i for i, (c, s) in enumerate(self.order)}

    def neighbour(self, chunk: Chunk, span: Span, step: int) -> tuple[Chunk, Span] | None:
        i = self.position.get((chunk.doc_id, span.start))
        if i is None or not 0 <= i + step < len(self.order):
            return None
        other = self.order[i + step]
        same_paragraph = other[0].doc_id == chunk.doc_id and other[0].paragraph == chunk.paragraph
        return other if same_paragraph else None


def _needs_before(sentence: str) -> bool:
    """The sentence cannot stand without the one before it: it leans back on it or points at what it named."""
    return bool(_LEANS_BACK.match(sentence) or _POINTS_BACK.search(sentence))


def select_evidence(
    asked: Asked, ranked: Sequence[tuple[float, Chunk, Span]], sentences: Sentences,
    margin: float = Settings.model_fields["second_fact_margin"].default, tie: float = Settings.model_fields["tie_margin"].default,
    also: Sequence[tuple[Chunk, Span]] = (),
) -> Evidence:
    """The best sentence, the neighbours it leans on, the best sentence for each later part of
    the question, and a second fact the question also names.

    Args:
        asked: the analysed question.
        ranked: sentences of the retrieved passages, best first (``rank_sentences``).
        sentences: the corpus in reading order, for neighbours outside the retrieved passages.
        margin: how far below the best a second, complementary sentence may score.
        tie: a sentence this close to the best is taken even if it adds none of the question's
            words: nearly as good a match, it may be the one that answers (an English question
            matched across languages), or the rest of a list.
        also: the best sentence for each later part of a question that asks several things
            (:attr:`Asked.parts`), ranked by that part: each part gets its sentence, one more
            than ``MAX_EVIDENCE`` per part. A sentence that leans on one not chosen may bring
            it past that room, once.
    """
    if not ranked:
        return Evidence((), 0.0)
    best_score, chunk, span = ranked[0]
    chosen: list[tuple[Chunk, Span]] = [(chunk, span)]
    # Sentences brought only for the one after them to be read: such a sentence brings the one
    # before it only to say what it points at ("darin", "dort"), not what it contrasts or goes on
    # from ("Stattdessen …" before "Der Vertrag selbst …" does not bring the plan it replaced).
    brought: list[tuple[Chunk, Span]] = []

    def bring_before(item: tuple[Chunk, Span]) -> None:
        before = sentences.neighbour(*item, -1)
        text = item[1].text
        # A contrast ("Stattdessen folgte …", "However, …") says all it states; what it turns
        # from is asked for only when a reason is, or what came first ("Before …, which … first?").
        contrast_only = (bool(_CONTRASTS.match(text)) and not asked.reason and not _POINTS_BACK.search(text)
                         and not _ASKS_EARLIER.search(asked.text))
        leans = _POINTS_BACK.search(text) if item in brought else _needs_before(text) and not contrast_only
        if before and leans and before not in chosen:
            chosen.append(before)
            brought.append(before)

    def add_context(item: tuple[Chunk, Span]) -> None:
        bring_before(item)
        c, s = item
        after = sentences.neighbour(c, s, 1)
        if after and (_CONTINUES.match(after[1].text) or s.text.rstrip().endswith(":")) and after not in chosen:
            chosen.append(after)

    add_context(chosen[0])
    most = MAX_EVIDENCE
    for item in also:
        if item not in chosen:
            chosen.append(item)
            most += 1
            add_context(item)
    covered = {t for _, s in chosen for t in tokenize(s.text)}
    missing = {t for t in asked.tokens if not _matches(t, covered)}
    # The sentence after the best one that refers back to it and says what the best one lacks
    # ("Der Vertrag von Altdorf …" — "Beide Städte sicherten sich darin … zu").
    after = sentences.neighbour(chunk, span, 1)
    # Asked what the text says about something, the sentence that goes on about it belongs too.
    # So does the one that goes on from it when the question asks two things ("…, und wie reagierte …?"),
    # or asks why, how, or what followed: the best sentence matches the question's premise, and the
    # reason follows it, or follows a paragraph's opening claim ("… wusste jeder im Dorf.").
    opens = asked.reason and sentences.neighbour(chunk, span, -1) is None
    goes_on = after and (_LEANS_BACK.match(after[1].text) or _REFERS_BACK.search(after[1].text) or opens
                         or _names_again(after[1].text, span.text))
    wants_more = asked.overview or bool(asked.parts) or asked.reason
    if goes_on and after not in chosen:
        gained = {t for t in missing if _matches(t, set(tokenize(after[1].text)))}
        if gained or wants_more:
            chosen.append(after)
            missing -= gained
            # Asked why or how, the sentences that go on from it leaning back carry on the reasoning
            # ("… enthielt keine Zölle." — "Beide sicherten sich darin … zu." — "Das war … der Anfang …").
            while wants_more and len(chosen) < most:
                after = sentences.neighbour(*after, 1)
                if not after or after in chosen or not _LEANS_BACK.match(after[1].text):
                    break
                chosen.append(after)
                missing -= {t for t in missing if _matches(t, set(tokenize(after[1].text)))}
    for score, c, s in ranked[1:]:
        if len(chosen) >= most or score < best_score - margin or not missing:
            break
        if (c, s) in chosen:
            continue
        gained = {t for t in missing if _matches(t, set(tokenize(s.text)))}
        if gained:
            chosen.append((c, s))
            missing -= gained
    # Then a sentence nearly as close as the best, where room is left.
    chosen += [(c, s) for score, c, s in ranked[1:] if tie > 0 and score >= best_score - tie and (c, s) not in chosen]
    chosen = chosen[:most]
    # Any sentence chosen that leans on the one before it brings that one too, one more than the
    # room left if need be: "Beide … darin …", "Die dortige …" say nothing without it.
    for item in list(chosen):
        if len(chosen) <= most:
            bring_before(item)
    chosen.sort(key=lambda item: sentences.position.get((item[0].doc_id, item[1].start), 0))
    return Evidence(tuple(chosen), best_score, span.text)


# A name's earlier parts: a capitalised word, with a nobiliary particle or none, before another.
_NAME_PART = re.compile(r"(?<![\w-])([A-ZÄÖÜ][\w-]+)\s+(?:(?:von|van|de|zu|du|da|di|ten|ter)\s+)?(?=([A-ZÄÖÜ][\w-]+))")
# After an article it is a noun with its adjective ("der Altdorfer Vertrag"; "einer" too, which opens
# no fragment question and so is not among ``_ARTICLES``).
_DETERMINER_BEFORE = re.compile(rf"\b(?:{'|'.join(sorted(_ARTICLES | {'einer'}))})\s+$", re.IGNORECASE)


def with_full_names(asked: Asked, texts: Iterable[str]) -> Asked:
    """The question's words with the earlier parts of the names it gives by their last part, as
    the texts write them ("Berger" -> "Anna von Berger"): a claim that adds only those
    ("Anna von Berger was acquitted.") says no more than the question.

    >>> sorted(with_full_names(analyse("Was Berger acquitted?"), ["Die Verlegerin Anna von Berger kam."]).tokens)
    ['acquitted', 'anna', 'berg']
    >>> sorted(with_full_names(analyse("Welcher Vertrag kam?"), ["Der Altdorfer Vertrag kam."]).tokens)
    ['kam', 'vertrag']
    """
    parts = {t for text in texts for m in _NAME_PART.finditer(text)
             if not asked.tokens.isdisjoint(tokenize(m.group(2))) and not _DETERMINER_BEFORE.search(text, 0, m.start())
             for t in tokenize(m.group(1))}
    return replace(asked, tokens=asked.tokens | parts)


_DEFINITE_OPENING = re.compile(r"^(?:der|die|das|the)\s+([A-ZÄÖÜa-zäöü][\w-]+)", re.IGNORECASE)


def _names_again(sentence: str, before: str) -> bool:
    """The sentence opens by naming again, with a definite article, what the one before named
    ("… im Vertrag von Altdorf." — "Der Vertrag selbst regelte …"): it goes on about the same thing.

    >>> _names_again("Der Vertrag selbst regelte nichts.", "Es folgte der Vertrag von Altdorf."), _names_again("Die Zeitung schrieb.", "Es folgte der Vertrag.")
    (True, False)
    """
    opening = _DEFINITE_OPENING.match(sentence)
    return bool(opening) and not set(tokenize(opening.group(1))).isdisjoint(tokenize(before))


def informative(claim: str, asked: Asked, shown_numbers: set[int]) -> bool:
    """A sentence adds something beyond the question: not an echo, not only a passage number.

    >>> a = analyse("Wer beendete den Handel?")
    >>> informative("Der Handel wurde beendet.", a, set())
    False
    >>> informative("Norwegen beendete ihn.", a, set()), informative("Es war 3.", a, {3})
    (True, False)
    >>> informative("Der Vertrag enthielt sie nicht.", analyse("Enthielt der Vertrag sie?"), set())
    True
    """
    new = [t for t in tokenize(claim) if not _matches(t, set(asked.tokens))]
    if not new:  # an echo; for a yes/no question it states the answer's polarity, which verification checks
        return asked.yes_no
    return not all(t.isdigit() and int(t) in shown_numbers for t in new)


# "How many years …" and "how long …": a difference of two years the text gives, computed here.
_YEAR = re.compile(rf"\b({_YEAR_DIGITS})\b")
# A year where the text uses it as a date: after a word of time, a dash or a name, or opening a
# sentence; and a decade ("in den 1890er Jahren", "the 1890s") wherever it stands.
_YEAR_AS_DATE = re.compile(
    r"(?:\b(?:im|in|seit|bis|von|vom|ab|vor|nach|um|jahr\w*|since|until|till|from|to|between|by|und|and)\s+"
    rf"|[–-]\s*|(?:^|[.!?]\s+))(?:{_YEAR_DIGITS})\b|\b(?:{_YEAR_DIGITS})(?:er|s)\b"
    # and after a place's name, ending a phrase: "der Vertrag von Altdorf 1891." (not "Insgesamt 1200.")
    rf"|\b(?:von|vom|bei|zu|of|at)\s+(?-i:[A-ZÄÖÜ])[\w-]*\s+(?:{_YEAR_DIGITS})(?=\s*(?:[.,;)]|$))",
    re.IGNORECASE,
)
_YEAR_RANGE = re.compile(rf"\b({_YEAR_DIGITS})\s*(?:bis|to|until|till|–|-)\s*({_YEAR_DIGITS})\b")
_HOW_LONG = re.compile(r"\b(?:wie\s+lange|how\s+long)\b", re.IGNORECASE)
_HOW_MANY_YEARS = re.compile(r"\b(?:wie\s+viele\s+jahre|how\s+many\s+years)\b", re.IGNORECASE)
_APART = re.compile(r"\b(?:nach|vor|zwischen|seit|später|früher|after|before|between|since|later|earlier)\b",
                    re.IGNORECASE)
_ENDS = re.compile(r"\b(?:ende\w*|beende\w*|end|ends|ended|ending)\b", re.IGNORECASE)
_BEGINS = re.compile(r"\b(?:begann|beginn\w*|anfang\w*|began|begin\w*|start\w*)\b", re.IGNORECASE)


def years_asked(question: str) -> bool:
    """Whether the question asks for a number of years ("wie viele Jahre …", "how long …").

    >>> years_asked("Wie viele Jahre nach dem Vertrag erschien der Artikel?"), years_asked("Wann?")
    (True, False)
    """
    return bool(_HOW_MANY_YEARS.search(question) or _HOW_LONG.search(question))


def year_span(question: str, texts: Sequence[str]) -> tuple[int, int] | None:
    """The two years a years question is about, when the question and the evidence name exactly two.

    A span ("1891 bis 1900") answers "how long"; asked for the time between two events, its first
    year stands for a beginning ("begann") and its last for an end ("Ende"); other years count as
    they stand. Anything else is ambiguous: None.

    >>> year_span("Wie viele Jahre nach Altdorf erschien der Artikel?", ["Altdorf 1891.", "1898 erschien er."])
    (1891, 1898)
    >>> year_span("How many years before the trade ended did X happen?", ["from 1891 to 1900", "1895 X"])
    (1895, 1900)
    >>> year_span("Wie lange dauerte sie?", ["von 1891 bis 1900"])
    (1891, 1900)
    >>> [year_span(q, ["1891, 1895 und 1898."]) for q in ["Wie viele Jahre nach Altdorf kam er?", "Wie lange saß er?"]]
    [None, None]
    """
    if not years_asked(question):
        return None
    ranges: list[tuple[int, int]] = []
    points = {int(y) for y in _YEAR.findall(question)}
    for text in texts:
        found = list(_YEAR_RANGE.finditer(text))
        ranges += [(int(m[1]), int(m[2])) for m in found]
        points |= {int(m[1]) for m in _YEAR.finditer(text) if not any(r.start() <= m.start() < r.end() for r in found)}
    if not _APART.search(question):  # how long something lasted: a span the text gives, nothing looser
        return ranges[0] if len(ranges) == 1 and not points else None
    for first, last in ranges:
        points |= ({first} if _BEGINS.search(question) else set()) | ({last} if _ENDS.search(question) else set())
    return (min(points), max(points)) if len(points) == 2 else None


def with_years(question: str, evidence: Evidence, ranked: Sequence[tuple[float, Chunk, Span]],
               depth: int = 8) -> tuple[Evidence, tuple[int, int] | None]:
    """The evidence for a years question, with the best-ranked sentence that gives the missing
    year added when the chosen sentences hold only one; and the two years, if they are clear.

    How long something lasted is read from one sentence with one span that shares a word with
    the question: a span in a sentence about something else is the duration of something else."""
    if not years_asked(question):
        return evidence, None
    have = {(c.id, s.start) for c, s in evidence.items}

    def adding(chunk: Chunk, sentence: Span) -> Evidence:
        if (chunk.id, sentence.start) in have:
            return evidence
        items = evidence.items + ((chunk, sentence),)
        return Evidence(tuple(sorted(items, key=lambda cs: (cs[0].doc_id, cs[0].paragraph, cs[1].start))),
                        evidence.score, evidence.best)

    candidates = list(evidence.items) + [(c, s) for _, c, s in ranked[:depth]]
    if not _APART.search(question):
        asked = set(tokenize(question)) - ASKING
        for chunk, sentence in candidates:
            if asked & set(tokenize(sentence.text)) and (span := year_span(question, [sentence.text])):
                return adding(chunk, sentence), span
        return evidence, None
    span = year_span(question, evidence.texts)
    if span:
        return evidence, span
    for chunk, sentence in candidates[len(evidence.items):]:
        if (chunk.id, sentence.start) not in have and _YEAR.search(sentence.text):
            grown = adding(chunk, sentence)
            if span := year_span(question, grown.texts):
                return grown, span
    return evidence, None
