import pytest

from assistant.chunking import Chunk, Span
from assistant.citations import (
    Support,
    cite,
    embedding_similarity,
    lexical_support,
    parse_markers,
    render,
    verify,
)
from assistant.retrieval import tokenize


def chunk(cid: str, *sentences: str) -> Chunk:
    spans, pos = [], 0
    for s in sentences:
        spans.append(Span(s, pos, pos + len(s), (1,)))
        pos += len(s) + 1
    return Chunk(cid, "d", "T", 0, 0, " ".join(sentences), 0, pos, tuple(spans), (1,), {1: "Buch, S. 1."}, "h")


A = chunk("d:p0:s0", "Die Piloten wurden in Lipezk ausgebildet.", "Das Wetter war gut.")
B = chunk("d:p1:s0", "Die Zeitung The Guardian enthüllte 1926 die Zusammenarbeit.")
LEX = Support(similarity=None)


def test_marker_forms_are_parsed():
    assert parse_markers("A [1, 2] b [3][4].")[1] == [1, 2, 3, 4]
    assert parse_markers("A [1; 2].")[1] == [1, 2]


def test_wrong_marker_is_repaired_to_the_supporting_passage():
    text, notes = cite("Die Piloten wurden in Lipezk ausgebildet [2].", {1: A, 2: B}, [A, B], LEX)
    assert text == "Die Piloten wurden in Lipezk ausgebildet [1]."
    assert notes[0].chunk_id == "d:p0:s0" and notes[0].sentence.startswith("Die Piloten")
    assert notes[0].references == {1: "Buch, S. 1."}


def test_out_of_range_markers_are_dropped_and_footnotes_renumbered_by_first_use():
    draft = "The Guardian enthüllte 1926 die Zusammenarbeit [7]. Die Piloten wurden in Lipezk ausgebildet [99]."
    text, notes = cite(draft, {1: A, 2: B}, [A, B], LEX)
    assert text == "The Guardian enthüllte 1926 die Zusammenarbeit [1]. Die Piloten wurden in Lipezk ausgebildet [2]."
    assert [n.chunk_id for n in notes] == ["d:p1:s0", "d:p0:s0"]


def test_unsupported_sentences_are_removed_not_cited():
    draft = "Die Piloten wurden in Lipezk ausgebildet [1]. Sie flogen 300 Einsätze über Moskau [1]."
    text, notes = cite(draft, {1: A}, [A], LEX)
    assert text == "Die Piloten wurden in Lipezk ausgebildet [1]."
    assert len(notes) == 1


def test_numbers_must_match():
    assert lexical_support("Im Jahr 1927 enthüllte The Guardian die Zusammenarbeit.", B.text) == 0.0
    assert lexical_support("1926 enthüllte The Guardian die Zusammenarbeit.", B.text) == 1.0


def test_marker_after_the_period_stays_with_its_sentence():
    text, notes = cite("Die Piloten wurden in Lipezk ausgebildet. [1] Ende.", {1: A}, [A], LEX)
    assert text.startswith("Die Piloten wurden in Lipezk ausgebildet [1].")


def test_embedding_support_accepts_a_translation():
    similar = Support(similarity=lambda claim, texts: [0.9 if "Lipezk" in t else 0.1 for t in texts])
    text, notes = cite("The pilots were trained in Lipetsk.", {1: A}, [A], similar)
    assert text == "The pilots were trained in Lipetsk [1]." and notes[0].chunk_id == A.id


def test_a_claim_of_one_clause_is_scored_against_that_clause_of_a_long_sentence():
    class Vectors:  # the claim means the first clause; the sentence of both means it only in part
        def embed_documents(self, texts):
            return [[1.0, 0.0] if "Kreiser" in t and "Ossietzky" not in t else [0.0, 1.0] if "Kreiser" not in t
                    else [0.6, 0.8] for t in texts]

    sentence = "Der Autor Kreiser musste nach Frankreich fliehen, der Chefredakteur Ossietzky wurde verurteilt."
    assert embedding_similarity(Vectors())("Kreiser fled to France.", [sentence]) == pytest.approx([0.6])
    assert embedding_similarity(Vectors(), 0.18)("Kreiser fled to France.", [sentence]) == pytest.approx([0.82])


def test_bare_verdicts_are_left_to_the_chain():
    # The chain decides a verdict from the evidence's polarity; verification drops the model's.
    text, _ = cite("Nein. Die Piloten wurden in Lipezk ausgebildet [1].", {1: A}, [A], LEX)
    assert text == "Die Piloten wurden in Lipezk ausgebildet [1]."
    text, notes = cite("Ja. Sie flogen nach Moskau.", {1: A}, [A], LEX)
    assert text == "" and notes == []


def test_a_computed_difference_of_two_years_is_supported():
    a = chunk("d:p1:s0", "Der Vertrag von Rapallo wurde 1922 geschlossen.")
    b = chunk("d:p2:s0", "Der Berliner Vertrag folgte 1926.")
    text, notes = verify_and_render("Zwischen den Verträgen lagen 4 Jahre.", [a, b])
    assert text == "Zwischen den Verträgen lagen 4 Jahre [1][2]." and len(notes) == 2
    text, _ = verify_and_render("Zwischen den Verträgen lagen 5 Jahre.", [a, b])
    assert text == ""


def verify_and_render(draft, chunks):
    evidence = [(c, s) for c in chunks for s in c.spans]
    given = frozenset(tokenize("Wie viele Jahre lagen zwischen den Verträgen?"))
    return render(verify(draft, dict(enumerate(chunks, 1)), chunks, LEX, evidence=evidence, given=given))


def test_a_name_from_another_clause_is_not_supported():
    c = chunk("d:p5:s1", "Der Autor Walter Kreiser musste daraufhin nach Frankreich fliehen, der verantwortliche "
                         "Chefredakteur Carl von Ossietzky wurde im Prozess zu einer Haftstrafe verurteilt.")
    assert cite("Carl von Ossietzky wurde zu einer Haftstrafe verurteilt.", {1: c}, [c], LEX)[0]
    assert cite("Walter Kreiser wurde zu einer Haftstrafe verurteilt.", {1: c}, [c], LEX)[0] == ""


def test_a_claim_that_drops_the_negation_is_not_supported():
    c = chunk("d:p2:s0", "Die Berichterstattung schadete der deutschen Außenpolitik aber nicht weiter.")
    text, _ = cite("Ja, die Berichterstattung schadete der deutschen Außenpolitik.", {1: c}, [c], LEX)
    assert text == ""
    text, _ = cite("Nein, die Berichterstattung schadete der deutschen Außenpolitik nicht.", {1: c}, [c], LEX)
    assert text.startswith("Nein, die Berichterstattung")


def test_a_truncated_copy_is_replaced_by_the_whole_source_sentence():
    c = chunk("d:p4:s3", "Viele Offiziere wurden später Befehlshaber (z. B. Heinz Guderian, Walter Model).")
    text, _ = cite("Viele Offiziere wurden später Befehlshaber [1].", {1: c}, [c], LEX)  # cut before "(z. B."
    assert text == "Viele Offiziere wurden später Befehlshaber (z. B. Heinz Guderian, Walter Model) [1]."
