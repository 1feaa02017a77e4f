"""Bad input through the CLI: one-line error, exit code 2, the index untouched."""

from __future__ import annotations

import argparse

import pytest
from helpers import ARTICLE, ROOT, free_port

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


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices


def test_every_subcommand_documents_each_of_its_options(capsys):
    for name, command in subcommands().items():
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        help_text = capsys.readouterr().out
        assert help_text.startswith(f"usage: assistant {name}")
        for action in command._actions:
            assert action.help, f"assistant {name}: {action.option_strings or action.dest} has no help text"
            for option in action.option_strings:
                assert option in help_text, f"assistant {name} --help does not mention {option}"


@pytest.mark.parametrize("command", [["ask", "Wer?"], ["chat"], ["serve"]])
def test_one_backend_commands_refuse_a_second(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--backend", "local", "--backend", "extractive"])
    assert exit_info.value.code == 2
    assert "--backend given twice; this command uses one (`assistant eval` compares several)" in capsys.readouterr().err


def test_eval_compares_several_backends():
    args = build_parser().parse_args(["eval", "--backend", "local", "--backend", "extractive", "--out", "runs/x"])
    assert args.backend == ["local", "extractive"]


@pytest.mark.parametrize("argv", [["models", "list", "--backend", "local"], ["ingest", "-k", "3"], ["search", "Lipezk", "--backend", "local"]])
def test_options_belong_to_the_commands_that_use_them(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and f"unrecognized arguments: {argv[-2]}" in capsys.readouterr().err


def test_remote_bind_needs_a_flag(settings_factory, capsys):
    settings_factory()
    code, _, err = run(["serve", "--host", "0.0.0.0"], capsys)
    assert code == 2 and "--allow-remote" in err


def test_env_example_lists_every_setting():
    from assistant.settings import Settings

    listed = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert [n for n in Settings.model_fields if f"ASSISTANT_{n.upper()}=" not in listed] == []
