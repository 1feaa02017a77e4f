"""`assistant eval` end to end with the real embedder and the extractive backend: outputs, resume, compare."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from assistant.eval.metrics import load_qa, read_jsonl
from assistant.eval.report import compare
from assistant.eval.run import run_eval


@pytest.fixture
def qa_file(tmp_path):
    """Six items of the dev split, one of them unanswerable."""
    items = load_qa(ROOT / "eval" / "qa.jsonl", "dev")
    picked = [i for i in items if i["answerable"]][:5] + [i for i in items if not i["answerable"]][:1]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in picked), encoding="utf-8")
    return path, [i["id"] for i in picked]


@pytest.mark.slow
def test_eval_writes_stable_outputs_and_resumes(real_index, qa_file, tmp_path, capsys):
    settings, _ = real_index
    qa, ids = qa_file
    out = tmp_path / "run"
    assert run_eval(settings, qa, out, ["extractive"], limit=3) == 0
    first = read_jsonl(out / "results.jsonl")
    assert [r["id"] for r in first] == ids[:3]
    # An interruption leaves a cut line; marked records must survive the resumed run untouched.
    with (out / "results.jsonl").open("r+", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
        lines[0] = json.dumps(json.loads(lines[0]) | {"total_s": 123.0}, ensure_ascii=False)
        handle.seek(0), handle.truncate()
        handle.write("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    assert run_eval(settings, qa, out, ["extractive"]) == 0
    records = read_jsonl(out / "results.jsonl")
    assert [r["id"] for r in records] == ids and records[0]["total_s"] == 123.0
    assert all({"correct", "cited_ok", "similarity", "footnotes"} <= set(r) for r in records if r["answerable"])
    answered = [r for r in records if not r["refused"]]
    assert answered and all("sentence_supported" in r and "citation_precise" in r for r in answered)

    summary = json.loads((out / "summary.json").read_text())
    metrics = summary["backends"]["extractive"]["all"]
    for key in ("accuracy", "refusal_accuracy", "false_refusal_rate", "answer_similarity", "citation_precision",
                "citation_recall", "alce_citation_precision", "alce_citation_recall", "ttft_p50_s", "total_p95_s"):
        assert key in metrics, key
    assert metrics["alce_citation_recall"] >= 0.8 and metrics["alce_citation_precision"] >= 0.8, metrics  # quotes verbatim
    assert {"hybrid", "bm25"} <= set(summary["retrieval"]) and summary["retrieval"]["hybrid"]["recall@5"] > 0.5
    assert set(summary["backends"]["extractive"]["by_kind"]) >= {records[0]["kind"]}
    report = (out / "report.md").read_text()
    assert "alce_citation_recall" in report and ".png)" in report
    assert all((out / p).stat().st_size > 1000 for p in ("accuracy_by_kind.png", "latency.png"))

    # --compare: flip one verdict in a copy and see it reported as worse.
    other = tmp_path / "other"
    other.mkdir()
    changed = [r | {"correct": False} if r["id"] == next(x["id"] for x in records if x["correct"]) else r for r in records]
    (other / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in changed))
    text = compare(out, other)
    assert "  - " in text and "->" in text
    # A run of several backends keeps each in its folder; it compares with a one-backend run.
    several = tmp_path / "several"
    (several / "extractive").mkdir(parents=True)
    (other / "results.jsonl").rename(several / "extractive" / "results.jsonl")
    assert compare(out, several).startswith("extractive: correct")


def test_the_chat_needs_nothing_of_the_eval_package():
    """The [eval] extra is for `assistant eval`, tests and benchmarks: starting the chat imports none of it."""
    code = ("import sys, assistant.cli, assistant.ui, assistant.chain; "
            "print(sorted(m for m in sys.modules if m.startswith(('assistant.eval', 'matplotlib', 'langchain_text_splitters', 'langchain_chroma'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_verdict_opposite_to_the_reference_is_wrong_whatever_facts_it_holds():
    from assistant.eval.metrics import score_answer

    item = {"answerable": True, "must": ["beendet"], "evidence": [], "answer": "Nein, sie wurde beendet."}
    wrong = score_answer(item, {"answer": "Ja. Sie wurde beendet [1].", "refused": False})
    right = score_answer(item, {"answer": "Nein. Sie wurde beendet [1].", "refused": False})
    plain = score_answer(item, {"answer": "Sie wurde beendet [1].", "refused": False})
    assert (wrong["correct"], right["correct"], plain["correct"]) == (False, True, True)
