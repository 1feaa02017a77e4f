"""The eval set is data the product is judged on: check it like code."""

import json
from collections import Counter

from helpers import ARTICLE, ROOT

from assistant.eval.metrics import load_qa


def test_qa_file_schema_and_coverage():
    items = load_qa(ROOT / "eval" / "qa.jsonl")
    kinds = Counter(i["kind"] for i in items)
    assert len(items) >= 70
    assert kinds["unanswerable"] + kinds["injection"] >= 10
    assert sum(i["lang"] == "en" for i in items) >= 10
    assert kinds["followup"] >= 8 and kinds["multihop"] >= 6 and kinds["source"] >= 5
    assert {i["split"] for i in items} == {"dev", "test"}
    for item in items:
        assert item["answerable"] == bool(item["must"]) == bool(item["evidence"]), item["id"]
        for turn in item["history"]:
            assert len(turn) == 2


def test_every_evidence_string_is_verbatim_in_the_article():
    source = ARTICLE.read_text(encoding="utf-8")
    for name in ("qa.jsonl", "hostile.jsonl", "hostile-fresh.jsonl", "hostile-fresh2.jsonl", "hostile-fresh3.jsonl", "hostile-fresh4.jsonl",
                 "hostile-fresh5.jsonl", "hostile-fresh6.jsonl", "fresh-qa.jsonl", "other-languages.jsonl"):
        for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            for evidence in item["evidence"]:
                assert evidence in source, (name, item["id"], evidence)


def test_questions_in_other_languages_cover_five_languages():
    items = load_qa(ROOT / "eval" / "other-languages.jsonl")
    assert len(items) >= 10 and len({i["lang"] for i in items} - {"de", "en"}) >= 5
