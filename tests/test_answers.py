"""The answer path: evidence first, the model can only add, refusals show what the text says nearby.

Unit tests use fake models over the article (fake embeddings); the second-document tests run the
whole chain with the real embedder over a different German document written for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ARTICLE, one_chunk
from langchain_core.language_models import FakeListChatModel

from assistant.chain import AnswerChain
from assistant.corpus import read_document
from assistant.eval.metrics import has_fact
from assistant.retrieval import HybridRetriever
from assistant.store import Store

SECOND = Path(__file__).parent / "data" / "stadtbibliothek-neuheim.txt"


def chain_over(path: Path, settings, embeddings, model=None) -> AnswerChain:
    store = Store(settings, embeddings)
    store.ingest([read_document(path)], replace=True)
    return AnswerChain(HybridRetriever(store=store, k=settings.k), settings, model, "fake" if model else "extractive")


@pytest.fixture
def article(settings_factory, fake_embeddings):
    return chain_over(ARTICLE, settings_factory(min_relevance=-1.0, min_nearby=0.0), fake_embeddings)


def ask(chain: AnswerChain, question: str, draft: str | None = None):
    chain.model = FakeListChatModel(responses=[draft]) if draft is not None else None
    return chain.invoke(question)


def test_an_echo_of_the_question_is_not_an_answer(article):
    answer = ask(article, "Wer beendete die Zusammenarbeit?", "Die Zusammenarbeit wurde beendet [1].")
    assert "Deutschland" in answer.answer and "wurde beendet" not in answer.answer and not answer.refused


def test_a_yes_no_echo_pieced_from_two_sentences_gives_no_verdict(article):
    # "waren dafür" in one sentence, "Angebote … 1926" in another: the echo's "gegen" is in neither.
    answer = ask(article, "Waren das Reichswehrministerium und die Ostabteilung gegen die sowjetischen Angebote von 1926?",
                 "Ja, das Reichswehrministerium und die Ostabteilung gegen die sowjetischen Angebote von 1926.")
    assert not answer.answer.startswith("Ja") and "gegen die sowjetischen Angebote" not in answer.answer, answer.answer


def test_a_sentence_nearly_as_close_as_the_best_joins_the_evidence():
    from assistant.evidence import Sentences, analyse, select_evidence

    chunk, spans = one_chunk(["Zuerst dachte man an Schweden.", "Es kam anders.", "Dann kam der Vertrag."])
    ranked = [(0.80, chunk, spans[2]), (0.75, chunk, spans[0]), (0.40, chunk, spans[1])]
    asked = analyse("Which country came first?")  # English: no word of it in the German sentences
    chosen = select_evidence(asked, ranked, Sentences([chunk]), tie=0.1).texts
    assert chosen == ["Zuerst dachte man an Schweden.", "Dann kam der Vertrag."]
    assert select_evidence(asked, ranked, Sentences([chunk]), tie=0.0).texts == ["Dann kam der Vertrag."]


def test_what_followed_takes_the_sentence_that_goes_on():
    from assistant.evidence import Sentences, analyse, select_evidence

    chunk, spans = one_chunk(["Der Minister hatte Bedenken.", "Deswegen blieb die Hilfe klein."])
    ranked = [(0.9, chunk, spans[0]), (0.3, chunk, spans[1])]
    texts = [select_evidence(analyse(q), ranked, Sentences([chunk])).texts for q in
             ["Was folgte daraus, dass der Minister Bedenken hatte?", "Wer hatte Bedenken?"]]
    assert texts == [[s.text for s in spans], [spans[0].text]]


def test_each_part_of_a_question_that_asks_several_things_gets_its_sentence():
    from assistant.evidence import MAX_EVIDENCE, Sentences, analyse, select_evidence

    sentences = ["Im Mai kam ein Angebot.", "Außerdem kam ein zweites.", "Die Partei war dafür, der Minister dagegen.",
                 "Deswegen blieb die Hilfe klein."]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9 - i / 10, chunk, s) for i, s in enumerate(spans)]
    asked = analyse("Wie reagierte man auf das Angebot vom Mai, und welche Folge hatte das für die Hilfe?")
    assert asked.parts == ("und welche Folge hatte das für die Hilfe?",)
    alone = select_evidence(asked, ranked, Sentences([chunk])).texts
    both = select_evidence(asked, ranked, Sentences([chunk]), also=[(chunk, spans[-1])]).texts
    assert sentences[-1] not in alone and len(alone) <= MAX_EVIDENCE
    assert both == sentences  # the first part's sentences, the second's, and the one it leans on


@pytest.mark.parametrize("after,joins", [("Der Vertrag selbst regelte nur Reparationen.", True),
                                         ("Die Zeitung schrieb darüber nichts.", False)])
def test_a_sentence_that_names_again_what_the_best_one_named_goes_on_from_it(after, joins):
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Man dachte an Schweden.", "Stattdessen folgte der Vertrag von Rapallo.", after]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[1]), (0.3, chunk, spans[0]), (0.2, chunk, spans[2])]
    chosen = select_evidence(analyse("Was stand im Vertrag von Rapallo, und was fehlte?"), ranked, Sentences([chunk])).texts
    assert (after in chosen) == joins and sentences[1] in chosen, chosen


@pytest.mark.parametrize("sentences", [
    ["Die Sache war ein offenes Geheimnis.", "Eine Zeitung schrieb 1929 darüber."],  # the paragraph's opening claim
    ["Es gab Versuche.", "Zwei Projekte sind nennenswert.", "Erkenntnisse aus diesen Projekten wurden genutzt."],
    ["Es gab Gespräche.", "Eine Zeitung enthüllte 1926 die Sache.", "Obwohl gleichzeitig verhandelt wurde, schadete es nicht."],
])
def test_why_takes_the_sentence_after_an_opening_claim_or_one_that_refers_back(sentences):
    from assistant.evidence import Sentences, analyse, select_evidence

    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[-2]), *((0.2, chunk, s) for s in spans if s != spans[-2])]
    evidence = select_evidence(analyse(f"Warum gilt: {sentences[-2]}?"), ranked, Sentences([chunk]))
    assert evidence.texts == sentences[-2:]


def test_why_follows_the_sentences_that_lean_back_one_after_another():
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Der Vertrag regelte nichts Militärisches.", "Beide Staaten sagten sich darin Neutralität zu.",
                 "Das war die Grundlage der Zusammenarbeit.", "Die Zeitung schrieb daraufhin darüber."]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[0]), *((0.2, chunk, s) for s in spans[1:])]
    why = select_evidence(analyse("Warum war der Vertrag wichtig, obwohl er nichts Militärisches regelte?"), ranked, Sentences([chunk]))
    assert why.texts == sentences[:3]  # not the last: it refers back, but does not lean on the one before
    who = select_evidence(analyse("Welcher Vertrag regelte nichts Militärisches?"), ranked, Sentences([chunk]))
    assert who.texts == sentences[:1]  # nothing asked that the next one adds


@pytest.mark.parametrize("best,joins", [("Die dortige Schule bildete Funker aus.", True), ("Die Schule bildete Funker aus.", False),
                                        ("Die Schule selbst bildete Funker aus.", True)])
def test_a_sentence_that_points_at_what_was_named_before_brings_that_sentence(best, joins):
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Viele Offiziere lernten in Kama.", best]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[1]), (0.1, chunk, spans[0])]
    chosen = select_evidence(analyse("Wo wurden Funker ausgebildet?"), ranked, Sentences([chunk]), tie=0.0).texts
    assert chosen == (sentences if joins else [best]), chosen


def test_a_draft_written_as_a_numbered_list_is_verified_item_by_item(article):
    draft = ("Die Folgen für die Beteiligten waren:\n\n1. Walter Kreiser musste nach Frankreich fliehen.\n"
             "2. Carl von Ossietzky wurde im Weltbühne-Prozess zu einer Haftstrafe verurteilt.")
    answer = ask(article, "Was waren die Folgen des Weltbühne-Artikels für die Beteiligten?", draft)
    assert not answer.refused and "Haftstrafe" in answer.answer, answer.answer


def test_the_kind_of_answer_asked_for_need_not_be_in_the_text(article):
    # "Einrichtung" names the kind of answer ("was … für eine"): the text says "Panzerschule Kama".
    answer = ask(article, "Was war Kama denn überhaupt für eine Einrichtung?",
                 "Kama war eine Einrichtung in der Sowjetunion, die Flugzeuge entwickelte.")
    assert not answer.refused and "Panzerschule Kama" in answer.answer, answer.answer


def test_any_sentence_chosen_that_leans_back_brings_the_one_it_leans_on():
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Es folgte der Vertrag von Rapallo.", "Der Vertrag selbst regelte nur Reparationen.", "Später kam der Berliner Vertrag."]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[2]), (0.85, chunk, spans[1]), (0.1, chunk, spans[0])]
    chosen = select_evidence(analyse("Welche Verträge regelten etwas?"), ranked, Sentences([chunk]), tie=0.1).texts
    assert chosen == sentences, chosen


def test_a_sentence_that_leans_back_brings_the_one_it_leans_on_even_past_the_room_left():
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Neustadt machte Angebote.", "Außerdem bot Neustadt Geld.", "Der Rat war dafür, doch der Bürgermeister zögerte.",
                 "Deswegen bemühte sich der Bürgermeister um wenig."]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[0]), (0.89, chunk, spans[3]), (0.1, chunk, spans[1]), (0.05, chunk, spans[2])]
    chosen = select_evidence(analyse("Wer war für die Angebote?"), ranked, Sentences([chunk]), tie=0.1).texts
    assert chosen == sentences, chosen  # "Deswegen" alone hides who was for it and why


def test_a_contrast_brings_what_it_turns_from_only_when_a_reason_is_asked():
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Zunächst plante Neustadt eine Brücke.", "Stattdessen baute Neustadt 1891 eine Fähre."]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[1]), (0.1, chunk, spans[0])]
    what = select_evidence(analyse("Was baute Neustadt 1891?"), ranked, Sentences([chunk]), tie=0.1).texts
    why = select_evidence(analyse("Warum baute Neustadt 1891 eine Fähre?"), ranked, Sentences([chunk]), tie=0.1).texts
    first = select_evidence(analyse("Was plante Neustadt zuerst, vor der Fähre?"), ranked, Sentences([chunk]), tie=0.1).texts
    assert (what, why, first) == (sentences[1:], sentences, sentences)


def test_a_sentence_brought_to_be_read_brings_its_own_predecessor_only_for_what_it_points_at():
    from assistant.evidence import Sentences, analyse, select_evidence

    sentences = ["Die Stadt war arm.", "Deswegen verkaufte sie den Wald.", "Der Wald selbst ging an Altdorf."]
    chunk, spans = one_chunk(sentences)
    ranked = [(0.9, chunk, spans[2]), (0.1, chunk, spans[1]), (0.05, chunk, spans[0])]
    chosen = select_evidence(analyse("An wen ging der Wald?"), ranked, Sentences([chunk]), tie=0.1).texts
    assert chosen == sentences[1:], chosen


def test_a_passage_number_is_not_a_value(article):
    answer = ask(article, "Wie viele Piloten wurden in Lipezk ausgebildet?", "3 [3].")
    assert "mehrere hundert" in answer.answer and not answer.answer.startswith("3")


def test_a_question_in_another_language_gets_no_verdict_it_cannot_read(article):
    answer = ask(article, "Wat beloofden Duitsland en de Sovjet-Unie elkaar in het Berliner Vertrag?", "No.")
    assert answer.lang == "nl" and not answer.answer.startswith(("No", "Nein", "Ja", "Yes")), answer.answer
    assert "English" in answer.notice or "Englisch" in answer.notice


def test_a_verb_of_refusal_makes_the_verdict_no(article):
    answer = ask(article, "Wollten die Deutschen das Militärbündnis, das Radek vorschlug?",
                 "Ja, die Deutschen wollten das Militärbündnis [1].")
    assert answer.answer.startswith("Nein:") and "Ja" not in answer.answer and "lehnten die Deutschen ab" in answer.answer


class Judging(FakeListChatModel):
    """A fake model that also gives a fixed yes-over-no margin, and keeps what it was asked."""

    margin: float = 0.0
    asked: list = []

    def yes_no_margin(self, messages, yes, no):
        self.asked.append((messages[-1].content, yes, no))
        return self.margin


@pytest.mark.slow
def test_a_claim_in_a_third_language_is_never_shown(settings_factory, real_embeddings):
    # Asked in French with "answer in French", the local model obeyed and wrote a reason the text
    # never gives, which verification across languages let pass; the answer is the text's sentences.
    question = "Pourquoi la coopération entre la Reichswehr et l'Armée rouge devait-elle rester secrète ? Réponds en français, stp."
    draft = ("La coopération entre la Reichswehr et l'Armée rouge devait-elle rester secrète pour éviter que les alliés "
             "puissent connaître les techniques et les méthodes de l'Armée rouge, ce qui pourrait les aider à mieux "
             "préparer leurs propres attaques.")
    chain = chain_over(ARTICLE, settings_factory(), real_embeddings, FakeListChatModel(responses=[draft]))
    answer = chain.invoke(question)
    assert "alliés" not in answer.answer and answer.footnotes, answer.answer


@pytest.mark.slow
@pytest.mark.parametrize("question,fact", [("WO WURDEN DENN DIE PILOTEN DER REICHSWEHR AUSGEBILDET, BITTE SCHNELL???", "Lipezk"),
                                           ("WELCHE ZEITUNG HAT DIE ZUSAMMENARBEIT ENTHÜLLT?", "Guardian")])
def test_a_question_in_capitals_is_answered_as_one_in_mixed_case(settings_factory, real_embeddings, question, fact):
    # In capitals every word looked like a noun the text never uses ("SCHNELL"): the first was
    # refused, the second answered with the article's opening sentence.
    answer = chain_over(ARTICLE, settings_factory(), real_embeddings).invoke(question)
    assert not answer.refused and fact in answer.answer, answer.answer


def judged(chain: AnswerChain, question: str, draft: str, margin: float):
    chain.model = Judging(responses=[draft], margin=margin, asked=[])
    return chain.invoke(question), chain.model.asked


def test_a_no_in_other_words_is_judged_on_the_best_sentence_alone(article):
    question = "Blieb Deutschland nach der Machtergreifung der Nationalsozialisten bei der Zusammenarbeit?"
    answer, asked = judged(article, question, "Ja, Deutschland blieb bei der Zusammenarbeit [1].", -1.0)
    assert answer.answer.startswith("Nein:") and "beendete Deutschland" in answer.answer, answer.answer
    assert "blieb bei der Zusammenarbeit" not in answer.answer  # the model's yes is not shown beside the no
    [(prompt, yes, no)] = asked
    assert (yes, no) == ("Ja", "Nein") and question in prompt and "beendete" in prompt and "Rapallo" not in prompt
    # An undecided margin leaves the verdict to the rules: no denial word, so none.
    answer, _ = judged(article, question, "Ja, Deutschland blieb bei der Zusammenarbeit [1].", 0.0)
    assert not answer.answer.startswith(("Nein", "Ja")), answer.answer


def test_going_on_asked_with_a_separable_verb_is_denied_by_an_ending(article):
    # "setzte … fort" asks whether it went on; "beendete" says it ended: no judge needed.
    question = "Setzte Deutschland die Zusammenarbeit nach der Machtergreifung der Nationalsozialisten fort?"
    answer, asked = judged(article, question, "Ja, Deutschland setzte die Zusammenarbeit fort [1].", 0.0)
    assert answer.answer.startswith("Nein:") and "beendete Deutschland" in answer.answer, answer.answer
    assert not asked


def test_a_judged_yes_needs_the_model_to_say_it_too(article):
    question = "Sollten die mit deutscher Hilfe aufgebauten Anlagen von Deutschland mitgenutzt werden?"
    answer, _ = judged(article, question, "Ja, so wurde es angeboten.", 3.0)
    assert answer.answer.startswith("Ja:") and "mitgenutzt werden" in answer.answer, answer.answer
    answer, _ = judged(article, question, "Das ist unklar.", 3.0)  # says nothing the text holds
    assert not answer.answer.startswith("Ja") and "mitgenutzt werden" in answer.answer, answer.answer
    answer, _ = judged(article, "Did the Soviets offer to build up their armament industry with German help?", "Yes.", 3.0)
    assert answer.answer.startswith("Yes:"), answer.answer


def test_a_denial_in_the_evidence_needs_no_judge(article):
    answer, asked = judged(article, "Sah der Vertrag von Rapallo eine militärische Zusammenarbeit vor?", "Ja [1].", 3.0)
    assert answer.answer.startswith("Nein:") and asked == [], answer.answer


def test_asked_whether_something_went_on_an_ending_is_a_no(article):
    # No denial word anywhere: the sentence says the cooperation ended, the question asks whether it went on.
    answer, asked = judged(article, "Lief die Zusammenarbeit nach der Machtergreifung der Nationalsozialisten weiter?",
                           "Ja, nach der Machtergreifung beendete Deutschland diese Zusammenarbeit [1].", 3.0)
    assert answer.answer.startswith("Nein:") and "beendete Deutschland" in answer.answer and asked == [], answer.answer


def test_asked_whether_something_broke_a_rule_a_prohibition_is_no_denial(article):
    question = "Verstieß die Ausbildung an Panzern in der Sowjetunion gegen den Friedensvertrag von Versailles?"
    answer, asked = judged(article, question, "Ja, das war durch den Friedensvertrag von Versailles verboten [1].", 3.0)
    assert answer.answer.startswith("Ja:") and asked, answer.answer  # "verboten" agrees with "verstieß": the judge is asked


def test_an_english_who_answer_naming_a_person_of_the_best_sentence_is_quoted_not_refused(article):
    # The English claim is not verified against the German sentence; the name it gives stands in the best one.
    question = "Who was the Kominternvertreter who kept pushing for a Militärbündnis?"
    answer = ask(article, question, "The one who kept pushing for it was Karl Radek.")
    assert not answer.refused and "Kominternvertreter Karl Radek" in answer.answer, answer.answer
    assert ask(article, question, "The one who kept pushing for it was Heinz Guderian.").refused  # not that sentence's


def test_a_reason_brings_the_sentence_it_leans_on(article):
    answer = ask(article, "Warum bemühte sich das Auswärtige Amt, die Zusammenarbeit gering zu halten?")
    assert "Locarno" in answer.answer and "Deswegen" in answer.answer


def test_a_two_part_question_gets_the_sentence_that_goes_on(article):
    answer = ask(article, "Wer war für die sowjetischen Angebote, und wie verhielt sich daraufhin das Auswärtige Amt?")
    assert "Reichswehrministerium" in answer.answer and "gering zu halten" in answer.answer, answer.answer


def test_a_list_continued_with_ausserdem_is_kept_whole(article):
    answer = ask(article, "Welche Angebote machten die Sowjets im März 1926?")
    assert "Rüstungsindustrie" in answer.answer and "Außerdem boten sie" in answer.answer


def test_an_unanswerable_look_alike_is_refused_with_what_the_text_says_nearby(article):
    answer = ask(article, "Wer war der Kommandant der Fliegerschule in Lipezk?", "Hans von Seeckt [2].")
    assert answer.refused and answer.answer.startswith("Dazu steht im Artikel nichts. Er sagt dazu:")
    assert "Seeckt" not in answer.answer and "Lipezk" in answer.answer and answer.footnotes
    count = ask(article, "Wie viele Panzer wurden in Kama gebaut?", "Es wurden 12 Panzer gebaut.")
    assert count.refused and count.answer.startswith("Eine Zahl dazu steht im Artikel nicht.")


def test_a_sentence_the_model_copies_answers_a_question_with_a_word_the_text_never_uses(article):
    kama = ("Viele in der Panzerschule Kama führende oder ausgebildete Offiziere wurden später hohe Befehlshaber "
            "der Panzertruppe (z. B. Heinz Guderian, Erich von Manstein, Walter Model, Ewald von Kleist).")
    answer = ask(article, "Was war Guderians spätere Dienststellung?", kama)  # "Dienststellung": not in the text
    assert not answer.refused and "hohe Befehlshaber der Panzertruppe" in answer.answer, answer.answer
    invented = ask(article, "Was war Guderians spätere Dienststellung?", "Guderian wurde Generaloberst.")
    assert invented.refused, invented.answer


def test_asked_who_with_weak_evidence_a_draft_that_fails_verification_is_a_refusal(article):
    # The text never says who negotiated for the Soviets; the model names someone it does not know.
    answer = ask(article, "Wer verhandelte und unterschrieb 1926 den Berliner Vertrag?", "Georgi Tschitscherin [2].")
    assert answer.refused and "Tschitscherin" not in answer.answer and "Berliner Vertrag" in answer.answer, answer.answer


def test_a_bare_name_from_a_sentence_about_something_else_is_no_answer(article):
    # Ossietzky was editor-in-chief of another paper; the Guardian sentence is also in the evidence.
    wrong = ask(article, "Wer war Chefredakteur des Guardian, als die Zeitung 1926 die Zusammenarbeit enthüllte?",
                "Carl von Ossietzky")
    assert wrong.refused and not wrong.answer.startswith("Carl von Ossietzky") and "Guardian" in wrong.answer, wrong.answer
    # The sentence before names what was asked about: the name beside it answers.
    right = ask(article, "Wer schrieb den Artikel „Windiges in der deutschen Luftfahrt“?", "Walter Kreiser")
    assert right.answer.startswith("Walter Kreiser [") and not right.refused, right.answer


def test_a_fragment_the_text_says_of_someone_else_than_the_name_asked_about_is_a_refusal(article):
    # Kreiser fled to France; Ossietzky, in the sentence's other clause, was sentenced.
    wrong = ask(article, "What was Ossietzky's birthplace?", "Frankreich")
    assert wrong.refused and not wrong.answer.startswith("Frankreich"), wrong.answer
    right = ask(article, "Wer war Stresemanns Staatssekretär?", "Carl von Schubert")
    assert right.answer.startswith("Carl von Schubert [") and not right.refused, right.answer


@pytest.mark.parametrize(
    "question,draft",
    [("Wo wurden die Piloten ausgebildet?", "In Moskau [1]."),
     ("Welche Zeitung enthüllte 1926 die Zusammenarbeit?", "NICHT IM TEXT"),
     ("Warum hatten Stresemann und Schubert Bedenken?", "Weil sie den Vertrag ablehnten."),
     ("Welche Offiziere wurden später Befehlshaber der Panzertruppe?", "Guderian [4]."),
     ("Was regelte der Vertrag von Rapallo?", "[1]")],
)
def test_the_model_can_only_add_to_the_quoted_evidence(article, question, draft):
    quoted = ask(article, question)
    answered = ask(article, question, draft)
    facts = [w for w in quoted.answer.replace("[", " ").split() if len(w) > 6]
    assert not answered.refused and all(has_fact(answered.answer, w) for w in facts), (quoted.answer, answered.answer)


SECOND_DOCUMENT = [
    ("Wer gründete die Lesehalle?", ["Körner"], False),
    ("Warum trug ein Förderverein den Betrieb?", ["Kosten"], False),
    ("Durften Kinder Bücher aus dem Bus mit nach Hause nehmen?", ["Nein"], False),
    ("Was geschah im Jahr 1908 mit der Bibliothek?", ["übernahm die Stadt", "Zollhaus"], False),
    ("Wie viele Bücher besaß die Bibliothek im Jahr 1908?", [], True),
    ("Wer war damals Bürgermeister von Neuheim?", [], True),
    # A noun the text never uses ("Gemeinderat") with evidence close in meaning: answered in the
    # text's own words; asked for a person the text does not name, still refused.
    ("Aus welchem Grund scheute der Gemeinderat die Übernahme der Lesehalle?", ["Kosten"], False),
    ("Wer war der Chauffeur der Fahrbücherei?", [], True),
    ("In welchem Monat wurde die Lesehalle gegründet?", [], True),  # the text gives the year only
    # An exact number asked for, with a request after the question: the text gives one.
    ("Wie viele Haltestellen fuhr der Bus genau an? Ich brauche die exakte Zahl.", ["zwölf"], False),
    # Asked for a town: one named after "Stadt" answers; villages the text mentions but never names do not.
    ("In welcher Stadt wurde die Lesehalle gegründet?", ["Neuheim"], False),
    ("In welchem Dorf hielt der Bus der Fahrbücherei?", [], True),
    # A name in the genitive: the question is about the text, though it never uses "Beruf".
    ("Was war Körners Beruf?", ["Fabrikant"], False),
    # An author whom only the Einzelnachweise name: the sentences he is cited for, and his book.
    ("Wie heißt Jörg Hansens Buch über die Fahrbücherei?", ["Erinnerungen eines Fahrers"], False),
    # Asked in English, with words the text never uses, or for what only the Einzelnachweis says.
    ("What is the subtitle of Jörg Hansen's book?", ["Erinnerungen eines Fahrers"], False),
    ("Who published Jörg Hansen's memoir?", ["Selbstverlag"], False),  # no word for sources: the author makes it one
    ("In welchem Jahr erschien Jörg Hansens Buch?", ["2010"], False),
    # The sources as a whole: every Einzelnachweis the text cites, each with a sentence citing it.
    ("What sources does the article cite?", ["Marta Lindner", "Paul Weber", "Stadtarchiv Neuheim", "Jörg Hansen"], False),
]


@pytest.mark.slow
@pytest.mark.parametrize("draft", [None, "Es waren 20 Jahre."])
def test_years_between_two_events_are_computed_and_cite_both_dates(settings_factory, real_embeddings, draft):
    model = FakeListChatModel(responses=[draft]) if draft else None  # whatever a model would say
    chain = chain_over(SECOND, settings_factory(), real_embeddings, model)
    answer = chain.invoke("Wie viele Jahre nach ihrer Gründung übernahm die Stadt die Bibliothek?")
    assert answer.answer.startswith("17 Jahre (1891–1908) [1][2].") and "20" not in answer.answer, answer.answer
    assert {"1891", "1908"} <= {w for f in answer.footnotes for w in f.sentence.replace(".", " ").split()}
    english = chain.invoke("How long did the support association run the reading hall, in years?")
    assert not english.answer.startswith(("17", "One")), english.answer  # no span given for it: not computed


@pytest.mark.slow
def test_an_english_question_is_searched_by_the_german_words_nearest_in_meaning(settings_factory, real_embeddings):
    chain = chain_over(SECOND, settings_factory(), real_embeddings)
    found = chain._bridged("Who was the first librarian, and what did she teach?")
    assert {"erste", "Bibliothek", "Lehrerin"} <= set(found) and not {"Who", "what", "she"} & set(found), found
    assert chain._bridged("Wer gründete die Lesehalle?") == []  # every word is the text's own
    answer = chain.invoke("Why did the city council refuse to take over the reading hall at first?")
    assert "Kosten" in answer.answer, answer.answer


@pytest.mark.slow
def test_a_bare_name_answers_an_english_question_when_its_sentence_holds_what_is_asked(settings_factory, real_embeddings):
    chain = chain_over(SECOND, settings_factory(), real_embeddings, FakeListChatModel(responses=["Helene Brandt"]))
    answer = chain.invoke("Who was the first head of the reading hall?")  # "erste Leiterin", by the word bridge
    assert answer.answer.startswith("Helene Brandt [1].") and not answer.refused, answer.answer


@pytest.mark.slow
@pytest.mark.parametrize("question,must,refused", SECOND_DOCUMENT)
def test_a_second_document_answers_cites_and_refuses(settings_factory, real_embeddings, question, must, refused):
    chain = chain_over(SECOND, settings_factory(), real_embeddings)
    answer = chain.invoke(question)
    assert answer.refused == refused, answer.to_dict()
    assert all(fact in answer.answer for fact in must), answer.answer
    if not refused:
        assert answer.footnotes and all(f.doc_id == "stadtbibliothek-neuheim" for f in answer.footnotes)
        assert all(f.sentence in SECOND.read_text(encoding="utf-8") for f in answer.footnotes)


@pytest.mark.slow
def test_a_draft_that_names_only_what_the_question_says_in_other_words_is_a_refusal(settings_factory, real_embeddings):
    # The text calls Neuheim a fictional town and names no country: "Deutschland" is the question's "deutschen".
    restating = FakeListChatModel(responses=["Neuheim liegt in Deutschland [1]."])
    chain = chain_over(SECOND, settings_factory(), real_embeddings, restating)
    answer = chain.invoke("In welcher deutschen Stadt liegt Neuheim?")
    assert answer.refused and "Deutschland" not in answer.answer and "fiktiven Stadt Neuheim" in answer.answer, answer.answer
    chain.model = FakeListChatModel(responses=["Die Bibliothek liegt in Neuheim [1]."])  # a name: an answer
    town = chain.invoke("In welcher Stadt liegt die Bibliothek?")  # the same weak evidence, a new name
    assert not town.refused and town.answer.startswith("Die Bibliothek liegt in Neuheim [1]."), town.answer


@pytest.mark.slow
def test_a_follow_up_about_who_was_just_named_is_searched_not_refused_as_off_topic(real_index):
    settings, store = real_index
    chain = AnswerChain(HybridRetriever(store=store, k=settings.k), settings, None, "extractive")
    history = [("Wer war ihr Chefredakteur?", "Carl von Ossietzky [1].")]
    follow_up = chain.invoke("Was geschah mit ihm?", history)  # "geschah": a verb the text never uses
    assert not follow_up.refused and "Haftstrafe" in follow_up.answer, follow_up.answer
    bread = chain.invoke("Und wie backe ich Brot?", history)  # names a thing the text never names
    assert bread.refused, bread.answer
