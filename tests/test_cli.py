"""Bad input through the CLI: one-line error, exit code 2, the index untouched."""

from __future__ import annotations

import pytest
from conftest import ARTICLE, free_port

from assistant.cli import build_parser, main
from assistant.corpus import read_document
from assistant.store import Store


@pytest.fixture
def indexed(settings_factory, fake_embeddings):
    settings = settings_factory()
    store = Store(settings, fake_embeddings)
    store.ingest([read_document(ARTICLE)])
    return settings, store, [c.id for c in store.chunks()]


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["search", "   "], "question is empty"),
        (["search", "x" * 1_000_000], "limit is 2,000"),
        (["ask", "\u200b\u200b"], "question is empty"),
        (["ask", "Wer?", "--backend", "gpt5"], "unknown backend provider 'gpt5'.*ASSISTANT_BACKEND"),
        (["ingest", "/nonexistent/file.txt"], "no such file"),
    ],
)
def test_bad_arguments(indexed, capsys, argv, message):
    import re

    settings, store, before = indexed
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(message, err)
    assert [c.id for c in store.chunks()] == before


@pytest.mark.parametrize("content,message", [(b"\x00\x01\x02", "binary"), ("Über".encode("latin-1") * 5, "not UTF-8")])
def test_bad_files_leave_the_index_intact(indexed, capsys, tmp_path, content, message):
    _, store, before = indexed
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    code, _, err = run(["ingest", str(bad)], capsys)
    assert code == 2 and message in err
    assert [c.id for c in store.chunks()] == before


def test_unreachable_chroma_url(settings_factory, capsys):
    settings_factory()
    code, _, err = run(["search", "Lipezk", "--chroma-url", f"http://127.0.0.1:{free_port()}"], capsys)
    assert code == 2 and "unreachable" in err and "ASSISTANT_CHROMA_URL" in err


def test_bad_chroma_url_setting(settings_factory, capsys):
    settings_factory()
    code, _, err = run(["search", "Lipezk", "--chroma-url", "localhost:8000"], capsys)
    assert code == 2 and "chroma_url" in err


def test_unwritable_data_directory(settings_factory, capsys, tmp_path):
    settings_factory()
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    code, _, err = run(["search", "Lipezk", "--home", str(blocker)], capsys)
    assert code == 2 and "not writable" in err


def test_corrupt_data_directory(settings_factory, capsys, tmp_path):
    settings_factory()
    home = tmp_path / "corrupt"
    (home / "chroma").mkdir(parents=True)
    (home / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    code, _, err = run(["search", "Lipezk", "--home", str(home)], capsys)
    assert code == 2 and "assistant ingest" in err
    assert (home / "chroma" / "chroma.sqlite3").read_bytes().startswith(b"this is not")


def test_no_index_yet(settings_factory, capsys):
    settings_factory()
    code, _, err = run(["search", "Lipezk"], capsys)
    assert code == 2 and "run `assistant ingest` first" in err


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    for command in ["models", "ingest", "search", "ask", "chat", "eval", "serve"]:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: assistant" in capsys.readouterr().out


def test_remote_bind_needs_a_flag(settings_factory, capsys):
    settings_factory()
    code, _, err = run(["serve", "--host", "0.0.0.0"], capsys)
    assert code == 2 and "--allow-remote" in err
