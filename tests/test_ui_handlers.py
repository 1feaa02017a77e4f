"""UI handlers with a fake-model chain: streaming, footnotes, errors, history — no server."""

from __future__ import annotations

import threading

import pytest
from helpers import ARTICLE
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage

from assistant.chain import Answer, AnswerChain
from assistant.corpus import read_document
from assistant.retrieval import HybridRetriever
from assistant.store import Store
from assistant.ui import (
    ChatHandlers,
    ChatService,
    article_html,
    build_app,
    example_questions,
    page_heading,
    plain_text,
    running_ahead,
)


@pytest.fixture
def service(settings_factory, fake_embeddings):
    settings = settings_factory(min_relevance=-1.0, backend="fake", fallback=None)
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    retriever = HybridRetriever(store=store, k=settings.k)
    chain = AnswerChain(retriever, settings, None, "fake")
    numbering, _, _ = chain._layout()
    n = next(i for i, c in numbering.items() if "Lipezk" in c.text)
    chain.model = GenericFakeChatModel(messages=iter([AIMessage(content=f"Die Piloten wurden in Lipezk ausgebildet [{n}].")] * 5))
    return ChatService(settings, chain)


def test_answer_streams_then_shows_superscript_and_footnotes(service):
    handlers = ChatHandlers(service)
    steps = list(handlers.respond("Wo wurden die Piloten ausgebildet?", []))
    streamed = [m[-1]["content"] for m, _ in steps[1:-1]]
    assert "Für den Aufbau der Luftwaffe" in streamed[0] and "formuliert" in streamed[0], "the evidence is shown first"
    assert any("▌" in s and "ungeprüft" in s for s in streamed), "the draft is shown, marked as unchecked"
    messages, answers = steps[-1]
    answer = next(m for m in messages if m["role"] == "assistant" and not m.get("metadata"))
    assert answer["content"].startswith("Die Piloten wurden in Lipezk ausgebildet<sup>[1]</sup>. Für den Aufbau")
    notes = next(m for m in messages if (m.get("metadata") or {}).get("title", "").startswith("Quellen"))
    assert "<mark>Für den Aufbau der Luftwaffe" in notes["content"] and "Ian Johnson" in notes["content"]
    assert answers[-1]["footnotes"][0]["chunk_id"].startswith("article:p4")


def test_footnote_choice_highlights_the_sentence_in_the_article(service):
    handlers = ChatHandlers(service)
    _, answers = list(handlers.respond("Wo wurden die Piloten ausgebildet?", []))[-1]
    choices = handlers.footnote_choices(answers)
    assert choices and choices[0][1] == "0:1"
    panel, article = handlers.show_footnote(choices[0][1], answers)
    assert "Ian Johnson" in panel
    assert '<mark id="hl">Für den Aufbau der Luftwaffe' in article


def test_history_pairs_skip_footnote_messages_and_follow_up_passes_history(service):
    handlers = ChatHandlers(service)
    messages, answers = list(handlers.respond("Wo wurden die Piloten ausgebildet?", []))[-1]
    pairs = handlers.history_pairs(messages)
    assert len(pairs) == 1 and pairs[0][0] == "Wo wurden die Piloten ausgebildet?"
    assert pairs[0][1].startswith("Die Piloten wurden in Lipezk ausgebildet [1].")
    service._chains["fake"].model = FakeListChatModel(responses=["NICHT IM TEXT"])
    messages, answers = list(handlers.respond("Wie viele?", messages, answers=answers, show_rewritten=True))[-1]
    assert answers[-1]["rewritten_question"] == "Wie viele? (zur vorherigen Frage: Wo wurden die Piloten ausgebildet?)"
    assert any((m.get("metadata") or {}).get("title") == "Gesuchte Frage" for m in messages)


@pytest.mark.parametrize("message", ["", "   ", "\u200b"])
def test_empty_message_gets_a_hint(service, message):
    messages, _ = list(ChatHandlers(service).respond(message, []))[-1]
    assert "Bitte eine Frage" in messages[-1]["content"]


def test_huge_message_is_truncated_with_a_notice(service):
    messages, answers = list(ChatHandlers(service).respond("Lipezk " * 20_000, []))[-1]
    assert any("nur die ersten 2,000" in m["content"] for m in messages)
    assert len(answers[-1]["question"]) <= 2000


def test_backend_error_is_shown_and_the_next_question_works(service):
    class Boom(FakeListChatModel):
        def _stream(self, *a, **k):
            raise TimeoutError("timed out")

    chain = service._chains["fake"]
    good = chain.model
    chain.model = Boom(responses=["x"])
    messages, _ = list(ChatHandlers(service).respond("Wo wurden die Piloten ausgebildet?", []))[-1]
    assert messages[-1]["content"].startswith("Fehler:") and "TimeoutError" in messages[-1]["content"]
    chain.model = good
    messages, _ = list(ChatHandlers(service).respond("Wo wurden die Piloten ausgebildet?", messages))[-1]
    assert any("Lipezk" in plain_text(m["content"]) for m in messages[-2:])


def test_article_html_escapes_and_marks():
    out = article_html("T", "a <b> c\n\nd", (2, 5))
    assert '<mark id="hl">&lt;b&gt;</mark>' in out and out.count("<p>") == 2


def test_build_app_constructs(service):
    assert build_app(service) is not None


def test_passage_count_is_per_request_not_shared(service):
    handlers = ChatHandlers(service)
    _, answers = list(handlers.respond("Wo wurden die Piloten ausgebildet?", [], k=2))[-1]
    assert len(answers[-1]["retrieved"]) == 2
    assert service.settings.k == 4 and service._chains["fake"].settings.k == 4


def test_question_can_be_restricted_to_one_document(settings_factory, fake_embeddings, tmp_path):
    settings = settings_factory(min_relevance=-1.0, backend="extractive", fallback=None)
    extra = tmp_path / "kama.txt"
    extra.write_text("Panzerschule Kama\n\nDie Panzerschule Kama lag bei Kasan an der Wolga.\n", encoding="utf-8")
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE), read_document(extra)])
    service = ChatService(settings, AnswerChain(HybridRetriever(store=store), settings, None, "extractive"))
    handlers = ChatHandlers(service)
    assert [v for _, v in handlers.document_choices()] == ["", "article", "kama"]
    _, everywhere = list(handlers.respond("Wo lag die Panzerschule Kama?", []))[-1]
    _, restricted = list(handlers.respond("Wo lag die Panzerschule Kama?", [], doc="article"))[-1]
    assert {r["chunk_id"].split(":")[0] for r in everywhere[-1]["retrieved"]} == {"article", "kama"}
    assert {r["chunk_id"].split(":")[0] for r in restricted[-1]["retrieved"]} == {"article"}
    assert {f["doc_id"] for f in restricted[-1]["footnotes"]} == {"article"}
    assert "Wolga" in handlers.show_document("kama") and "Reichswehr" in handlers.show_document("")


def test_heading_and_example_questions_come_from_the_indexed_documents(settings_factory, fake_embeddings, tmp_path):
    settings = settings_factory(backend="extractive", fallback=None)
    other = tmp_path / "neustadt.txt"
    other.write_text("Stadtmühle Neustadt\n\nDie Mühle mahlte seit 1891 Korn.\n", encoding="utf-8")
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(other)])
    assert page_heading(store.documents()) == "## Stadtmühle Neustadt — Fragen an den Artikel"
    assert example_questions(store.documents()) == []
    (tmp_path / "neustadt.meta.json").write_text('{"examples": ["Seit wann mahlte die Mühle?"]}', encoding="utf-8")
    assert store.ingest([read_document(other)]).changed  # new example questions are a change to index
    assert example_questions(store.documents()) == [["Seit wann mahlte die Mühle?"]]
    store.ingest([read_document(ARTICLE)])
    docs = store.documents()
    assert page_heading(docs) == "## Fragen an 2 Dokumente" and len(example_questions(docs)) == 6  # 1 + the article's 5


def test_other_language_note_is_shown_in_the_chat(service):
    messages, _ = list(ChatHandlers(service).respond("Où les pilotes ont-ils été formés ?", []))[-1]
    notes = [m["content"] for m in messages if (m.get("metadata") or {}).get("title") == "Hinweis"]
    assert notes and "only answer in German or English" in notes[0]


def test_a_question_typed_during_start_up_is_answered_from_keywords_once_the_model_is_there(service, monkeypatch):
    import threading

    from assistant.ui import STARTING

    monkeypatch.setattr("assistant.ui.STARTUP_WAIT", 2)  # a keyword refusal would wait: fail, not hang

    def no_embedder(*args, **kwargs):
        raise AssertionError("a quick answer must not use the embedder")

    service._ready.clear()
    service._model_ready.clear()
    threading.Timer(0.3, service._model_ready.set).start()
    retriever = service._chains["fake"].retriever
    monkeypatch.setattr(retriever.store, "dense_search", no_embedder)
    monkeypatch.setattr(retriever.store.embeddings, "embed_query", no_embedder)
    steps = list(ChatHandlers(service).respond("Wo wurden die Piloten ausgebildet?", []))
    shown = [m[-1]["content"] for m, _ in steps if m[-1]["role"] == "assistant"]
    assert any(STARTING in text for text in shown)
    answer = steps[-1][1][-1]
    assert "Lipezk" in answer["answer"] and "Stichwörtern" in answer["notice"]
    service._ready.set()
    monkeypatch.undo()
    steps = list(ChatHandlers(service).respond("Wo wurden die Piloten ausgebildet?", []))
    assert "Stichwörtern" not in steps[-1][1][-1]["notice"]  # once started, answers are whole again


def test_the_status_line_says_while_the_embedder_loads_that_answers_come_from_keywords(service, monkeypatch):
    from assistant.ui import STATUS_QUICK

    chain = service.chain("fake")
    seen = []
    monkeypatch.setattr(chain, "warm_model", lambda: seen.append(service.status()))
    monkeypatch.setattr(chain, "warm_embedder", lambda: seen.append(service.status()))
    monkeypatch.setattr(chain, "embed_sentences", lambda: None)
    service.warm_up()
    assert seen[1] == STATUS_QUICK != seen[0] and service.status().startswith("Modell: **fake**")


def test_a_follow_up_typed_during_start_up_is_answered_from_keywords_too(service, monkeypatch):
    import threading

    monkeypatch.setattr("assistant.ui.STARTUP_WAIT", 2)
    service._ready.clear()  # the model is there (_model_ready), the embedder not yet
    timer = threading.Timer(5, service._ready.set)
    timer.start()
    history = [{"role": "user", "content": "Wo wurden die Piloten ausgebildet?"},
               {"role": "assistant", "content": "In Lipezk [1]."}]
    steps = list(ChatHandlers(service).respond("Und wie viele wurden dort ausgebildet?", history))
    timer.cancel()
    service._ready.set()
    answer = steps[-1][1][-1]
    assert "Stichwörtern" in answer["notice"] and "hundert" in answer["answer"]


def test_a_question_in_another_language_than_the_text_waits_for_the_embedder_during_start_up(service):
    import threading

    service._ready.clear()  # the model is there, the embedder not yet: English needs its word bridge
    threading.Timer(0.3, service._ready.set).start()
    steps = list(ChatHandlers(service).respond("Where were the pilots trained?", []))
    assert "keywords" not in steps[-1][1][-1]["notice"] and service.is_ready()


def test_a_quick_refusal_during_start_up_waits_for_the_embedder_and_answers_again(service, monkeypatch):
    import threading

    chain = service._chains["fake"]
    calls = []
    real = chain.stream

    def refuses_quick(question, history=None, k=None, doc=None, quick=False):
        calls.append(quick)
        if quick:  # keywords found nothing
            yield "answer", Answer(question, question, "Dazu steht im Artikel nichts.", [], True, "fake", "de")
            return
        yield from real(question, history, k, doc, quick=quick)

    monkeypatch.setattr(chain, "stream", refuses_quick)
    service._ready.clear()
    threading.Timer(0.3, service._ready.set).start()
    steps = list(ChatHandlers(service).respond("Wo wurden die Piloten ausgebildet?", []))
    assert calls == [True, False]
    assert not steps[-1][1][-1]["refused"] and "Lipezk" in steps[-1][1][-1]["answer"]


def test_running_ahead_works_while_the_page_is_busy_and_hands_on_the_newest_step():
    first_taken, all_made = threading.Event(), threading.Event()

    def steps():
        yield 0
        first_taken.wait(5)
        yield 1
        yield 2
        all_made.set()  # made while the consumer (the page) was still busy with step 0

    ahead = running_ahead(steps())
    assert next(ahead) == 0
    first_taken.set()
    assert all_made.wait(5)
    assert list(ahead) == [2]  # step 1 was overtaken: each step is the whole chat


def test_running_ahead_raises_the_steps_error_and_stops_them_when_closed():
    def failing():
        yield "first"
        raise ValueError("backend broke")

    ahead = running_ahead(failing())
    seen = []
    with pytest.raises(ValueError, match="backend broke"):
        for step in ahead:
            seen.append(step)
    assert seen == ["first"]  # the last step before an error is never skipped

    closed, next_step = threading.Event(), threading.Event()

    def answering():
        try:
            yield "evidence"
            next_step.wait(5)  # the model writes on after the page let go
            yield "draft"
            yield "never handed on"
        finally:
            closed.set()

    ahead = running_ahead(answering())
    assert next(ahead) == "evidence"
    ahead.close()
    assert not closed.is_set()  # the thread is still inside its step
    next_step.set()
    assert closed.wait(5)  # and closes the steps when the next one comes
