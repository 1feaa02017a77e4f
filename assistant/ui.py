"""The Gradio chat: streamed answers, collapsible footnotes, the article beside it.

``build_app(service)`` returns the Blocks; the handlers (``ChatHandlers``) are plain generators
that tests call without a server. Gradio is imported only here.
"""

from __future__ import annotations

import contextvars
import html
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any, TypeVar

import gradio as gr

from . import AssistantError
from .backends import available, sparing_a_core
from .chain import AnswerChain, build_chain
from .corpus import DEBRIS, MARKER
from .retrieval import HybridRetriever, clean_question
from .settings import Settings

MAX_EXAMPLES = 6
HEADING = "## Fragen an den Text"
ALL_DOCUMENTS = "Alle Dokumente"
# The draft is redrawn at most this often: redrawing the page at every token took CPU from the
# model on 2 cores (`make bench-chat`).
DRAFT_EVERY = 0.3
# A question typed while the app starts waits for the model (~2 s) and is answered from keywords
# while the embedder loads (~8 s more), unless keywords cannot serve it (another language than the
# text's, or a refusal: ``ChatHandlers.respond``); a full answer beside the embedder's loading
# slowed both, and the next questions too, on 2 cores (`make bench-chat`).
STARTING = "Das Modell lädt noch (nach einem Neustart wenige Sekunden); die Frage wird danach beantwortet …"
STARTUP_WAIT = 300
PENDING = "Belege gefunden; die Antwort wird formuliert und geprüft …"
DRAFT = "Entwurf, noch ungeprüft:"
STOPPED = "Gestoppt: die Antwort wurde nicht zu Ende geschrieben."
STATUS_QUICK = "Modell bereit; die Bedeutungssuche lädt noch (bis dahin Antworten nach Stichwörtern) …"
LOG = logging.getLogger("assistant.chat")
T = TypeVar("T")
_TAGS = re.compile(r"<[^>]+>")
_REFERENCE = re.compile(r"\s*(\d{1,3})\.\s+(?:(?:[a-z]\s){1,8})?(.+)")
_REFERENCE_HEAD = re.compile(r"\.\s+In:|:(?!//)")  # "Autor: Titel", or "Titel. In: Zeitung" without an author


class ChatService:
    """Owns the retriever and one chain per backend; loads models in the background."""

    def __init__(self, settings: Settings, chain: AnswerChain | None = None) -> None:
        self.settings = settings
        self._chains: dict[str, AnswerChain] = {}
        self._lock = threading.Lock()
        self._status = "Lade Index und Modelle …"
        self._ready = threading.Event()
        self._model_ready = threading.Event()  # the model and the lexical index, not yet the embedder
        self.retriever: HybridRetriever | None = None
        if chain is not None:
            self.retriever = chain.retriever
            self._chains[chain.backend] = chain
            self._model_ready.set()
            self._ready.set()
            self._status = self._describe()

    def warm_up(self) -> None:
        """Load the index and the default model with its cached prompt (~2 s: questions can be
        answered ``quick`` from then on), then the embedder, and embed the corpus's sentences, so
        that every later question's sources show at once.

        In sequence: loading the embedder in a thread beside the model did not pay here (first
        answer after a start 11.9 s in parallel, 11.75 s in sequence, consecutive `make bench-chat`
        runs; it varies 9-14 s between runs on 2 cores, where the imports serialise anyway). The
        sentences are embedded in one go: embedding them in the gaps between the first questions
        made those questions' sources wait 0.8-1.1 s (`make bench-chat`).
        """
        try:
            chain = self.chain(self.settings.backend)
            chain.warm_model()
            self._model_ready.set()
            self._status = STATUS_QUICK
            with sparing_a_core(chain.model):  # quick answers beside the embedder's loading
                chain.warm_embedder()
                chain.embed_sentences()
            self._status = self._describe()
            self._ready.set()
            chain.warm_judge()  # yes/no verdicts' context, once questions need not wait for it
        except Exception as exc:  # noqa: BLE001 - shown in the status line, the app stays up
            self._status = f"Fehler: Start fehlgeschlagen: {exc}"
        finally:
            self._model_ready.set()
            self._ready.set()

    def start_background_warm_up(self) -> threading.Thread:
        thread = threading.Thread(target=self.warm_up, name="warm-up", daemon=True)
        thread.start()
        return thread

    def chain(self, backend: str) -> AnswerChain:
        with self._lock:
            if backend not in self._chains:
                if self.retriever is None:
                    self.retriever = HybridRetriever.for_settings(self.settings)
                    self.retriever.refresh()
                self._chains[backend] = build_chain(self.settings, backend, self.retriever)
            return self._chains[backend]

    def is_ready(self, timeout: float = 0.0) -> bool:
        """Whether the background warm-up has finished (waiting up to ``timeout`` seconds)."""
        return self._ready.wait(timeout)

    def can_answer_quick(self, timeout: float = 0.0) -> bool:
        """Whether the model and the lexical index are loaded (waiting up to ``timeout`` seconds):
        a question can be answered ``quick`` while the embedder still loads."""
        return self._model_ready.wait(timeout)

    def status(self) -> str:
        return self._status

    def _describe(self) -> str:
        assert self.retriever is not None
        docs = sorted({c.doc_id for c in self.retriever.chunks})
        return (
            f"Modell: **{self.settings.backend}** · Embedder: **{self.settings.embedding_model}** · "
            f"Index: {len(self.retriever.chunks)} Passagen aus {len(docs)} Dokument(en)"
        )

    def backends(self) -> list[str]:
        """Backends that are configured and reachable now, as the backend registry finds them."""
        return available(self.settings)

    def documents(self) -> dict[str, dict[str, Any]]:
        assert self.retriever is not None
        return self.retriever.store.documents()


def running_ahead(steps: Iterator[T]) -> Iterator[T]:
    """Hand on what ``steps`` yields while it runs in a thread of its own, skipping to the newest
    when several are waiting (each step here is the whole chat, so none is lost by skipping).

    Gradio resumes a streaming handler only after it has sent its last update to the page, so the
    chain stood still meanwhile: the model began reading its prompt only once the evidence had been
    sent. Run ahead, it reads while the page draws the sources. An exception in ``steps`` is raised
    here. Closing this generator (a stopped answer) returns at once; the thread closes ``steps``
    when its next step comes (the answer's next redraw, at most ``DRAFT_EVERY`` of the model's
    writing; a question waiting for the start-up waits on).

    >>> list(running_ahead(iter([1, 2, 3])))[-1]
    3
    """
    updates: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
    stopped = threading.Event()
    done = object()

    def work() -> None:
        error: BaseException | None = None
        try:
            for step in steps:
                if stopped.is_set():
                    break
                updates.put((step, None))
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            error = exc
        finally:
            try:
                close = getattr(steps, "close", None)
                if close:
                    close()
            finally:
                updates.put((done, error))  # whatever happened, the consumer stops waiting

    # In the caller's context (LangChain's callbacks and Gradio's request live in context variables).
    threading.Thread(target=contextvars.copy_context().run, args=(work,), name="answer", daemon=True).start()
    try:
        while True:
            step, error = updates.get()
            while step is not done and not updates.empty():  # the page only needs the newest
                newer, error = updates.get()
                if newer is done:
                    yield step
                step = newer
            if step is done:
                if error is not None:
                    raise error
                return
            yield step
    finally:
        stopped.set()


class PendingQuestions:
    """Questions a browser session typed while its previous answer was running.

    One worker per session answers them in order; a question typed meanwhile waits in line and is
    shown as waiting, never dropped. Claiming the worker role and finding the line empty happen
    under one lock, so a question cannot slip in between and be stranded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[str, list[str]] = {}
        self._busy: set[str] = set()

    def add(self, session: str, question: str) -> None:
        with self._lock:
            self._lines.setdefault(session, []).append(question)

    def claim(self, session: str) -> bool:
        """Become the session's worker; False when one is already answering."""
        with self._lock:
            if session in self._busy:
                return False
            self._busy.add(session)
            return True

    def next(self, session: str) -> str | None:
        """The next question, or None, which also gives up the worker role."""
        with self._lock:
            line = self._lines.get(session) or []
            if line:
                return line.pop(0)
            self._busy.discard(session)
            self._lines.pop(session, None)
            return None

    def release(self, session: str) -> None:
        with self._lock:
            self._busy.discard(session)

    def drop(self, session: str) -> None:
        """Forget the questions waiting in the session's line (the person pressed Stopp)."""
        with self._lock:
            self._lines.pop(session, None)

    def waiting(self, session: str) -> list[str]:
        with self._lock:
            return list(self._lines.get(session) or [])


def waiting_note(questions: list[str]) -> str:
    """The line under the chat that shows questions waiting for their turn.

    >>> waiting_note(["Wer?", "Wann?"])
    'Wartet (2): „Wer?“ · „Wann?“'
    >>> waiting_note([])
    ''
    """
    if not questions:
        return ""
    return f"Wartet ({len(questions)}): " + " · ".join(f"„{q[:80]}“" for q in questions)


# -- rendering --------------------------------------------------------------------------------------
def render_answer(text: str) -> str:
    """Markers as superscripts.

    >>> render_answer("In Neustadt [1].")
    'In Neustadt<sup>[1]</sup>.'
    """
    return MARKER.sub(r"<sup>[\1]</sup>", html.escape(text, quote=False)).replace(" <sup>", "<sup>")


def message_text(content: Any) -> str:
    """The text (HTML as sent) of a chat message in any of Gradio's content shapes: a string, a
    part ``{"type": "text", "text": …}``, or a list of parts, as the page sends messages back."""
    if isinstance(content, list):
        return " ".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content or "")


def plain_text(content: Any) -> str:
    """Text of a chat message in any of Gradio's content shapes, with superscripts back to [n]."""
    text = message_text(content).replace("<sup>", " ").replace("</sup>", "")
    return html.unescape(_TAGS.sub("", text)).strip()


def render_footnotes(answer: dict[str, Any]) -> str:
    """Each footnote: the passage with its supporting sentence highlighted, and its Einzelnachweis."""
    parts = []
    for f in answer["footnotes"]:
        passage = html.escape(f["passage"], quote=False)
        sentence = html.escape(f["sentence"], quote=False)
        passage = passage.replace(sentence, f"<mark>{sentence}</mark>", 1)
        refs = "<br>".join(f"Einzelnachweis {html.escape(k)}: {html.escape(v)}" for k, v in f["references"].items())
        parts.append(
            f"<p><b>[{f['n']}]</b> <i>{html.escape(f['title'])}</i> · {html.escape(f['chunk_id'])}<br>"
            f"{passage}<br><small>{refs or 'Kein Einzelnachweis hinter dieser Passage.'}</small></p>"
        )
    return "\n".join(parts)


def reference_label(reference: str) -> str:
    """Who or what an Einzelnachweis cites, for a short list: its author, or the title of a piece
    without one ("Titel. In: Zeitung").

    >>> reference_label("Anna Berger: Die Mühlen von Neustadt. Birkenfeld 1985, S. 175.")
    'Anna Berger'
    >>> reference_label("Paul Koch exclusive. In: The Neustadt Herald. London 1891, S. 9.")
    'Paul Koch exclusive'
    >>> reference_label("https://example.org/bericht.pdf (abgerufen 2024)")
    'https://example.org/bericht.pdf (abgerufen 2024)'
    >>> reference_label("Ebenda, S. 12.")
    'Ebenda, S. 12.'
    """
    return _REFERENCE_HEAD.split(reference, maxsplit=1)[0].strip()


def footnote_title(answer: dict[str, Any]) -> str:
    refs = {reference_label(v) for f in answer["footnotes"] for v in f["references"].values()}
    return f"Quellen ({len(answer['footnotes'])}): " + "; ".join(sorted(refs))[:120] if answer["footnotes"] else "Quellen"


def article_html(title: str, source: str, highlight: tuple[int, int] | None = None) -> str:
    """The document as HTML, with the highlighted span marked (``id="hl"`` for scrolling).

    Edit-link debris ("Bearbeiten") is dropped, the reference list becomes a numbered list, and
    each ``[n]`` marker in the text links to its entry.

    >>> html_ = article_html("T", "Satz.[1]\\n\\nEinzelnachweise\\n\\nBearbeiten\\n  1. Buch, S. 3.")
    >>> 'href="#ref-1"' in html_, '<li id="ref-1" value="1">Buch, S. 3.</li>' in html_, "Bearbeiten" in html_
    (True, True, False)
    """
    if highlight:
        a, b = highlight
        body = (html.escape(source[:a]) + '<mark id="hl">' + html.escape(source[a:b]) + "</mark>" + html.escape(source[b:]))
    else:
        body = html.escape(source)
    blocks = []
    for paragraph in re.split(r"\n\s*\n", body):
        lines = [line for line in paragraph.split("\n") if line.strip() and line.strip().lower() not in DEBRIS]
        references = [_REFERENCE.match(line) for line in lines]
        if lines and all(references):
            items = "".join(f'<li id="ref-{m[1]}" value="{m[1]}">{m[2]}</li>' for m in references if m)
            blocks.append(f'<ol class="references">{items}</ol>')
        elif lines:
            text = "<br>".join(line.strip() for line in lines)
            blocks.append("<p>" + MARKER.sub(r'<a class="ref" href="#ref-\1">[\1]</a>', text) + "</p>")
    return f'<div class="article" id="article"><h3>{html.escape(title)}</h3>{"".join(blocks)}</div>'


# -- handlers ---------------------------------------------------------------------------------------
class ChatHandlers:
    """Plain functions behind the UI's events; testable without a server."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    @staticmethod
    def stopped(messages: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """The chat after Stopp: an answer still being written keeps the sources found for it,
        loses its unchecked draft and says it was stopped; a finished answer stays as it is.

        >>> ChatHandlers.stopped([{"role": "user", "content": "Wo?"}, {"role": "assistant",
        ...     "content": f"In Neustadt.<br><small>{PENDING}</small><br><small><i>{DRAFT} In Neu ▌</i></small>"}])[-1]["content"]
        'In Neustadt.<br><small>Gestoppt: die Antwort wurde nicht zu Ende geschrieben.</small>'
        >>> ChatHandlers.stopped([{"role": "assistant", "content": [{"type": "text", "text": "…"}]}])[-1]["content"]
        '<small>Gestoppt: die Antwort wurde nicht zu Ende geschrieben.</small>'
        >>> ChatHandlers.stopped([{"role": "assistant", "content": "In Neustadt[1]."}])[-1]["content"]
        'In Neustadt[1].'
        """
        messages = list(messages or [])
        last = messages[-1] if messages else {}
        content = message_text(last.get("content")) if last.get("role") == "assistant" else ""
        if not (content == "…" or STARTING in content or PENDING in content or DRAFT in content):
            return messages
        sources = content.split(f"<br><small>{PENDING}", 1)[0] if PENDING in content else ""
        note = f"<small>{STOPPED}</small>"
        messages[-1] = {"role": "assistant", "content": f"{sources}<br>{note}" if sources else note}
        return messages

    @staticmethod
    def history_pairs(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(user, assistant answer) pairs, skipping footnote and notice messages."""
        pairs: list[tuple[str, str]] = []
        user = None
        for m in messages:
            m = m if isinstance(m, dict) else m.__dict__
            if (m.get("metadata") or {}).get("title"):
                continue
            if m["role"] == "user":
                user = plain_text(m["content"])
            elif m["role"] == "assistant" and user is not None:
                pairs.append((user, plain_text(m["content"])))
                user = None
        return pairs

    def respond(
        self,
        message: str,
        messages: list[dict[str, Any]] | None,
        backend: str | None = None,
        k: int | None = None,
        show_rewritten: bool = False,
        answers: list[dict[str, Any]] | None = None,
        doc: str | None = None,
    ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Stream the answer into the chat; yields (messages, answers-so-far).

        ``doc`` restricts this question's passages to one document (empty: all documents).
        """
        messages = list(messages or [])
        answers = list(answers or [])
        history = self.history_pairs(messages)
        text = clean_question(message or "")
        limit = self.service.settings.max_question_chars
        notice = ""
        if len(text) > limit:
            text, notice = text[:limit], f"Die Nachricht war {len(message):,} Zeichen lang; nur die ersten {limit:,} wurden verwendet."
        messages.append({"role": "user", "content": html.escape(text[:2000]) or "(leer)"})
        if not text:
            messages.append({"role": "assistant", "content": "Bitte eine Frage zum Artikel eingeben. / Please type a question about the article."})
            yield list(messages), list(answers)
            return
        if notice:
            messages.append({"role": "assistant", "content": notice, "metadata": {"title": "Hinweis"}})
        messages.append({"role": "assistant", "content": "…"})
        yield list(messages), list(answers)
        starting = not self.service.is_ready()
        waiting = {"role": "assistant", "content": f"<small>{STARTING}</small>"}
        if starting:
            messages[-1] = waiting
            yield list(messages), list(answers)
            self.service.can_answer_quick(timeout=STARTUP_WAIT)
        try:
            chain = self.service.chain(backend or self.service.settings.backend)
            # Starting: a question is answered as soon as the model is there, from keywords, unless
            # keywords cannot serve it (``AnswerChain.suits_quick``): then it waits for the embedder,
            # as a refusal from keywords does below. Dev follow-ups (18): 17 right this way, as with
            # the embedder; keywords alone for all of them 11 (English ones and refusals lost).
            quick = starting and chain.suits_quick(text) and not self.service.is_ready()
            if starting and not quick:
                self.service.is_ready(timeout=STARTUP_WAIT)
            result: dict[str, Any] = {}
            for keywords in (True, False) if quick else (False,):
                evidence, next_draft = "", 0.0
                for kind, value in chain.stream(text, history, int(k) if k else None, doc or None, quick=keywords):
                    if kind == "evidence":  # sources first, clearly marked as what the answer will rest on
                        evidence = f"{render_answer(value)}<br><small>{PENDING}</small>"
                        messages[-1] = {"role": "assistant", "content": evidence}
                        yield list(messages), list(answers)
                    elif kind == "token":  # the model's draft, visibly unchecked until verified
                        if time.perf_counter() < next_draft:
                            continue
                        next_draft = time.perf_counter() + DRAFT_EVERY
                        draft = f"<small><i>{DRAFT} {html.escape(MARKER.sub('', value))} ▌</i></small>"
                        messages[-1] = {"role": "assistant", "content": f"{evidence}<br>{draft}" if evidence else draft}
                        yield list(messages), list(answers)
                    else:
                        result = value.to_dict()
                if not (keywords and result.get("refused")):
                    break
                # Keywords found nothing that answers: the meaning search may; a refusal waits for it.
                messages[-1] = waiting
                yield list(messages), list(answers)
                self.service.is_ready(timeout=STARTUP_WAIT)
        except AssistantError as exc:
            messages[-1] = {"role": "assistant", "content": f"Fehler: {html.escape(str(exc))}"}
            yield list(messages), list(answers)
            return
        except Exception as exc:  # noqa: BLE001 - the app must stay up whatever a backend does
            messages[-1] = {"role": "assistant", "content": f"Fehler: Interner Fehler ({type(exc).__name__}); bitte erneut versuchen."}
            yield list(messages), list(answers)
            return
        LOG.info("answered in %.2f s (sources %.2f s, first model token %.2f s, %d new prompt tokens, %d tokens, %s)%s",
                 result["total_s"], result["evidence_s"], result["ttft_s"], result["prompt_tokens"], result["tokens"],
                 result["backend"], " refused" if result["refused"] else "")
        messages[-1] = {"role": "assistant", "content": render_answer(result["answer"])}
        if result["notice"]:
            messages.append({"role": "assistant", "content": html.escape(result["notice"]), "metadata": {"title": "Hinweis"}})
        if show_rewritten and result["rewritten_question"] != result["question"]:
            messages.append({"role": "assistant", "content": html.escape(result["rewritten_question"]), "metadata": {"title": "Gesuchte Frage"}})
        if result["footnotes"]:
            messages.append({"role": "assistant", "content": render_footnotes(result), "metadata": {"title": footnote_title(result), "status": "done"}})
        answers.append(result)
        yield list(messages), list(answers)

    def document_choices(self, docs: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
        """Dropdown choices: all documents, then each by title (of ``docs`` when read already)."""
        docs = self.service.documents() if docs is None else docs
        return [(ALL_DOCUMENTS, "")] + sorted(((d["title"], i) for i, d in docs.items()), key=lambda t: t[0].casefold())

    @staticmethod
    def footnote_choices(answers: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Radio choices for the footnotes of the latest answer: (label, "answer#:n")."""
        if not answers:
            return []
        last = answers[-1]
        i = len(answers) - 1
        return [(f"[{f['n']}] {f['sentence'][:70]}…", f"{i}:{f['n']}") for f in last["footnotes"]]

    def show_document(self, doc_id: str | None, docs: dict[str, dict[str, Any]] | None = None) -> str:
        """The article panel for one document (the first one for "all documents")."""
        docs = self.service.documents() if docs is None else docs
        doc = docs.get(doc_id or "") or next(iter(docs.values()))
        return article_html(doc["title"], doc["source"])

    def show_footnote(self, choice: str | None, answers: list[dict[str, Any]]) -> tuple[str, str]:
        """(passage panel HTML, article HTML with the footnote's sentence highlighted)."""
        if not choice or not answers:
            return "", self.show_document(None)
        docs = self.service.documents()
        index, n = (int(x) for x in choice.split(":"))
        footnote = next(f for f in answers[index]["footnotes"] if f["n"] == n)
        doc = docs[footnote["doc_id"]]
        panel = render_footnotes({"footnotes": [footnote]})
        return panel, article_html(doc["title"], doc["source"], (footnote["start"], footnote["end"]))


CSS = """
.article { max-height: 72vh; overflow-y: auto; padding: 0 .75rem; line-height: 1.5; }
.article mark, .passage mark { background: #ffe58a; padding: 0 2px; }
sup { color: #1d4ed8; font-weight: 600; }
"""
# Clicking a superscript marker in the chat selects that footnote (passage panel + article highlight).
HEAD = """<script>
document.addEventListener('click', (event) => {
  const sup = event.target.closest('#chat sup');
  if (!sup) return;
  const marker = sup.textContent.trim();
  const label = [...document.querySelectorAll('#footnotes label')].find(l => l.textContent.trim().startsWith(marker));
  if (label) label.click();
});
</script>"""
SCROLL_JS = "() => { setTimeout(() => { const m = document.getElementById('hl'); if (m) m.scrollIntoView({block: 'center', behavior: 'smooth'}); }, 300); }"


def page_heading(docs: dict[str, dict[str, Any]]) -> str:
    """The page's heading: the one document's title, or how many documents the index holds.

    >>> page_heading({"a": {"title": "Die Mühle"}}), page_heading({"a": {}, "b": {}}), page_heading({})
    ('## Die Mühle — Fragen an den Artikel', '## Fragen an 2 Dokumente', '## Fragen an den Text')
    """
    if len(docs) == 1:
        return f"## {next(iter(docs.values()))['title']} — Fragen an den Artikel"
    return f"## Fragen an {len(docs)} Dokumente" if docs else HEADING


def example_questions(docs: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Example questions the documents' metadata suggest (``"examples"`` in a ``.meta.json``), as
    rows of the examples table."""
    questions = [q for d in docs.values() for q in d["meta"].get("examples", []) if isinstance(q, str)]
    return [[q] for q in questions[:MAX_EXAMPLES]]


def build_app(service: ChatService) -> gr.Blocks:
    """The chat page. Takes the service (chains per backend); does not launch it."""
    handlers = ChatHandlers(service)
    settings = service.settings
    pending = PendingQuestions()
    with gr.Blocks(title="Artikel-Assistent") as app:
        heading = gr.Markdown(HEADING, elem_id="heading")
        status = gr.Markdown(service.status(), elem_id="status")
        answers = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                document = gr.Dropdown(choices=[(ALL_DOCUMENTS, "")], value="", label="Nur in diesem Dokument suchen", visible=False, elem_id="document")
                chatbot = gr.Chatbot(label="Chat", height=520, elem_id="chat")
                waiting = gr.Markdown("", elem_id="waiting")
                textbox = gr.Textbox(placeholder="Frage auf Deutsch oder Englisch …", show_label=False, elem_id="question", submit_btn=True, stop_btn=False)
                with gr.Row():
                    retry = gr.Button("Nochmal fragen", size="sm")
                    stop = gr.Button("Stopp", size="sm", variant="stop", interactive=False, elem_id="stop")
                    clear = gr.Button("Neues Gespräch", size="sm")
                examples = gr.Dataset(components=[textbox], samples=[], label="Beispiele", visible=False, elem_id="examples")
                examples.click(lambda sample: sample[0], examples, textbox, queue=False)
                footnote = gr.Radio(choices=[], label="Fußnote anzeigen (markiert sie im Artikel)", elem_id="footnotes")
                passage = gr.HTML(elem_classes=["passage"], elem_id="passage")
                with gr.Accordion("Einstellungen", open=False):
                    backend = gr.Dropdown(choices=[settings.backend, "extractive"], value=settings.backend, label="Backend", allow_custom_value=True)
                    k = gr.Slider(1, 10, value=settings.k, step=1, label="Passagen pro Frage")
                    show_rewritten = gr.Checkbox(False, label="Gesuchte Frage zeigen (Nachfragen mit der Frage davor)")
            with gr.Column(scale=2):
                with gr.Tab("Artikel"):
                    article = gr.HTML(elem_id="article-panel")

        def submit(message, messages, backend_value, k_value, rewritten, document_value, answers_value):
            for new_messages, new_answers in handlers.respond(message, messages, backend_value, k_value, rewritten, answers_value, document_value):
                yield new_messages, new_answers, ""
        inputs = [textbox, chatbot, backend, k, show_rewritten, document, answers]
        # One question in, one answer out: the API endpoint (gradio_client, load test).
        api = gr.Button(visible=False)
        api.click(submit, inputs, [chatbot, answers, textbox], concurrency_limit=settings.concurrency, api_name="ask")

        # The page: Enter puts the question in the session's line at once; one worker per session
        # answers the line in order, so a question typed during an answer waits instead of vanishing.
        def enqueue(message, request: gr.Request):
            pending.add(request.session_hash, message)
            return "", waiting_note(pending.waiting(request.session_hash))

        def drain(messages, backend_value, k_value, rewritten, document_value, answers_value, request: gr.Request):
            session = request.session_hash
            if not pending.claim(session):  # the running worker will get to it
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            try:
                while (question := pending.next(session)) is not None:
                    yield gr.skip(), gr.skip(), waiting_note(pending.waiting(session)), gr.Button(interactive=True)
                    steps = running_ahead(submit(question, messages, backend_value, k_value, rewritten, document_value, answers_value))
                    with closing(steps):  # a stopped answer lets go of its thread at once
                        for shown, answered, _ in steps:
                            yield shown, answered, waiting_note(pending.waiting(session)), gr.skip()
                    messages, answers_value = shown, answered
            finally:
                pending.release(session)
            yield gr.skip(), gr.skip(), "", gr.Button(interactive=False)

        ask = textbox.submit(enqueue, [textbox], [textbox, waiting], queue=False).then(
            drain, inputs[1:], [chatbot, answers, waiting, stop], concurrency_limit=settings.concurrency)
        ask.then(lambda a: gr.Radio(choices=handlers.footnote_choices(a), value=None), answers, footnote)

        def retry_last(messages, backend_value, k_value, rewritten, document_value, answers_value):
            pairs = handlers.history_pairs(messages or [])
            if not pairs:
                yield messages, answers_value, ""
                return
            last_user = pairs[-1][0]
            cut = max(i for i, m in enumerate(messages) if m["role"] == "user")
            yield from running_ahead(submit(last_user, messages[:cut], backend_value, k_value, rewritten, document_value, answers_value))
        again = retry.click(lambda: gr.Button(interactive=True), None, stop, queue=False).then(
            retry_last, inputs[1:], [chatbot, answers, textbox], concurrency_limit=settings.concurrency)
        again.then(lambda a: gr.Radio(choices=handlers.footnote_choices(a), value=None), answers, footnote).then(
            lambda: gr.Button(interactive=False), None, stop)
        def stop_all(request: gr.Request):
            pending.drop(request.session_hash)
            return gr.Button(interactive=False), ""
        # An answer stopped while it was written keeps its sources, not its unchecked draft.
        stop.click(stop_all, None, [stop, waiting], cancels=[ask, again], queue=False).then(
            handlers.stopped, chatbot, chatbot, queue=False)
        clear.click(lambda: ([], [], gr.Radio(choices=[], value=None), ""), None, [chatbot, answers, footnote, passage])
        footnote.change(handlers.show_footnote, [footnote, answers], [passage, article]).then(None, None, None, js=SCROLL_JS)

        def on_load():
            choices = service.backends() if service.is_ready(timeout=0.1) else [settings.backend, "extractive"]
            documents, title, samples = [(ALL_DOCUMENTS, "")], HEADING, []
            try:
                docs = service.documents()  # read once for the whole page
                article_value = handlers.show_document(None, docs)
                documents, title, samples = handlers.document_choices(docs), page_heading(docs), example_questions(docs)
            except AssistantError as exc:
                article_value = f"<p>⚠️ {html.escape(str(exc))}</p>"
            return (service.status(), gr.Dropdown(choices=choices, value=settings.backend), article_value,
                    gr.Dropdown(choices=documents, value="", visible=len(documents) > 2), title,
                    gr.Dataset(samples=samples, visible=bool(samples)))
        app.load(on_load, None, [status, backend, article, document, heading, examples])
        document.change(handlers.show_document, document, article)
        timer = gr.Timer(2.0)
        timer.tick(lambda: service.status(), None, status)
    return app


def launch(service: ChatService, host: str, port: int, auth: tuple[str, str] | None = None) -> None:
    app = build_app(service)
    app.queue(default_concurrency_limit=service.settings.concurrency, max_size=64)
    app.launch(
        server_name=host, server_port=port, share=False, auth=auth, show_error=False,
        allowed_paths=[], inbrowser=False, css=CSS, head=HEAD, footer_links=[],
    )


