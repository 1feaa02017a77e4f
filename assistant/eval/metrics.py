"""Evaluation over a QA file: retrieval recall/MRR, answers, citations, refusals, latency.

Results are appended to ``results.jsonl`` one item at a time, so an interrupted run resumes
where it stopped. ``summary.json`` is recomputed from ``results.jsonl`` at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import AssistantError
from ..corpus import MARKER

KINDS = {"factoid", "list", "why", "yesno", "multihop", "source", "followup", "unanswerable", "injection"}
REQUIRED = ("id", "question", "answer", "must", "evidence", "answerable", "lang", "kind")


class EvalError(AssistantError, ValueError):
    """The QA file is unusable; the message names the line."""


def load_qa(path: Path, split: str = "all") -> list[dict[str, Any]]:
    """Read and validate a QA file; ``split`` keeps ``dev``, ``test`` (items without one) or all."""
    if not path.exists():
        raise EvalError(f"{path}: no such QA file")
    items: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{n}: not JSON ({exc.msg})") from None
        missing = [k for k in REQUIRED if k not in item]
        if missing:
            raise EvalError(f"{path}:{n}: missing {missing}")
        if item["kind"] not in KINDS:
            raise EvalError(f"{path}:{n}: kind {item['kind']!r} is not one of {sorted(KINDS)}")
        item.setdefault("history", [])
        item.setdefault("split", "test")
        item.setdefault("added", "original")
        items.append(item)
    ids = [i["id"] for i in items]
    if len(set(ids)) != len(ids):
        raise EvalError(f"{path}: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return [i for i in items if split == "all" or i["split"] == split]


def _one_space(text: str) -> str:
    """Any run of white space (a no-break space too) as one space, lower-cased."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _norm(text: str) -> str:
    return _one_space(MARKER.sub("", text))


def covers(evidence: list[str], passages: list[str]) -> bool:
    """Every evidence string (footnote markers ignored) occurs in one of the passages.

    >>> covers(["Eins ist so.[1]"], ["x Eins  ist so. y"])
    True
    """
    hay = [_norm(p) for p in passages]
    return all(any(_norm(e) in h for h in hay) for e in evidence)


def first_hit_rank(evidence: list[str], passages: list[str]) -> int | None:
    """Smallest k such that the top-k passages cover all evidence, or None."""
    for k in range(1, len(passages) + 1):
        if covers(evidence, passages[:k]):
            return k
    return None


def has_fact(answer: str, fact: str) -> bool:
    """A ``must`` fact is present when one ``|`` alternative occurs (case-insensitive; any run of
    white space, a no-break space of a source text's "S.\u00a04" too, counts as one space).

    >>> has_fact("Seite: S.\u00a04.", "page 4|S. 4")
    True
    """
    low = _one_space(answer)
    return any(_one_space(alt) in low for alt in fact.split("|") if alt.strip())


def retrieval_query(item: dict[str, Any]) -> str:
    """The question with the previous user turn, for follow-ups evaluated without a rewriter."""
    history = item.get("history") or []
    return f"{history[-1][0]} {item['question']}" if history else item["question"]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 4)


def retrieval_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    ranks = [r["hit_rank"] for r in records if r.get("answerable")]
    if not ranks:
        return {}
    n = len(ranks)
    out = {f"recall@{k}": round(sum(1 for r in ranks if r and r <= k) / n, 4) for k in (1, 3, 4, 5)}
    out["mrr"] = round(sum(1 / r for r in ranks if r) / n, 4)
    out["n"] = n
    return out


@dataclass
class RetrievalSystem:
    """A name and a function question -> passages (each {chunk_id, text, score, haystack})."""

    name: str
    search: Callable[[str, int], list[dict[str, Any]]]


def run_retrieval(
    items: list[dict[str, Any]], system: RetrievalSystem, depth: int = 10
) -> list[dict[str, Any]]:
    records = []
    for item in items:
        passages = system.search(retrieval_query(item), depth)
        rank = first_hit_rank(item["evidence"], [p["haystack"] for p in passages]) if item["answerable"] else None
        records.append(
            {
                "id": item["id"],
                "question": item["question"],
                "kind": item["kind"],
                "lang": item["lang"],
                "answerable": item["answerable"],
                "hit_rank": rank,
                "retrieved": [{k: p[k] for k in ("chunk_id", "text", "score")} for p in passages],
            }
        )
    return records


def by_group(records: list[dict[str, Any]], key: str, metric: Callable[[list[dict]], dict]) -> dict[str, Any]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(str(r.get(key)), []).append(r)
    return {g: metric(rs) for g, rs in sorted(groups.items())}


def results_path(out: Path, backend: str, several: bool) -> Path:
    """Where a backend's ``results.jsonl`` goes: in ``out`` when the run has one backend, else in a
    folder of ``out`` named after it.

    >>> results_path(Path("runs/x"), "openai/gpt-4o", True).as_posix()
    'runs/x/openai_gpt-4o/results.jsonl'
    """
    return (out / re.sub(r"[^A-Za-z0-9._-]+", "_", backend) if several else out) / "results.jsonl"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by an interruption: drop it and redo that item
            continue
    return out


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# -- answers ---------------------------------------------------------------------------------------
def opposite_verdict(expected: str, answer: str) -> bool:
    """Both open with a verdict ("Ja", "No", …), and they disagree.

    >>> opposite_verdict("Nein, er lehnte ab.", "Ja. Er lehnte ab [1]."), opposite_verdict("Nein.", "No [1]."), opposite_verdict("Nein.", "Er lehnte ab.")
    (True, False, False)
    """
    from ..evidence import opening_verdict

    want, given = opening_verdict(expected), opening_verdict(answer)
    return bool(want and given) and want != given


def score_answer(item: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Per-item answer judgements, added to the result record.

    ``correct``: answerable, not refused, every ``must`` fact present and no verdict opposite to
    the reference answer's ("Ja. … beendete …" for "Nein, …" is wrong, though it holds the
    facts); or unanswerable and refused.
    ``cited_ok``: per citation, whether its passage (text or the references behind it) contains an
    evidence string. ``sentences_supported``: answer sentences whose citation passes that test.
    """
    answer, refused = result["answer"], result["refused"]
    if item["answerable"]:
        facts = [has_fact(answer, f) for f in item["must"]]
        correct = not refused and all(facts) and not opposite_verdict(item["answer"], answer)
    else:
        facts, correct = [], bool(refused)
    cited_ok = []
    for footnote in result.get("footnotes", []):
        hay = footnote["passage"] + " " + " ".join(footnote["references"].values())
        cited_ok.append(any(covers([e], [hay]) for e in item["evidence"]))
    from ..citations import claims

    sentences = len([c for c, _ in claims(answer) if re.search(r"\w{2}", c)])
    return {"correct": correct, "facts": facts, "cited_ok": cited_ok, "sentences": sentences}


def alce_citations(answer: str, footnotes: list[dict[str, Any]], supports: Callable[[str, list[str]], bool]) -> dict[str, list[bool]]:
    """ALCE-style judgements per answer sentence and per citation (Gao et al., 2023).

    A sentence is supported when it cites at least one passage and its cited passages together
    support it. A citation is precise when its sentence is supported and the citation is needed:
    it supports the sentence alone, or the sentence's other citations do not. ``supports`` is the
    judge (``Support.holds`` in ``assistant eval``). A footnote is its passage and the
    Einzelnachweise behind it, as for ``cited_ok``; the Einzelnachweis line a source answer ends
    with ("Einzelnachweis: Autor: Titel. Verlag, 2002, S. 9. [1]") is one statement, whatever
    periods its entry holds.

    >>> judge = lambda claim, passages: any("Neustadt" in p for p in passages)
    >>> notes = [{"n": 1, "passage": "Neustadt"}, {"n": 2, "passage": "Birkenfeld"}]
    >>> alce_citations("In Neustadt [1, 2]. Ohne Beleg. In Birkenfeld [2].", notes, judge)
    {'sentence_supported': [True, False, False], 'citation_precise': [True, False, False]}
    >>> notes = [{"n": 1, "passage": "Satz.", "references": {"4": "Neustadt. Ein Buch. Verlag, 2002."}}]
    >>> words = lambda claim, passages: all(w.strip(".,") in " ".join(passages) for w in claim.split())
    >>> alce_citations("Satz [1]. Einzelnachweis: Neustadt. Ein Buch. Verlag, 2002. [1]", notes, words)
    {'sentence_supported': [True, True], 'citation_precise': [True, True]}
    """
    from ..citations import SOURCE_LABEL, claims, parse_markers

    passages = {f["n"]: " ".join([f["passage"], *f.get("references", {}).values()]) for f in footnotes}
    labels = "|".join(re.escape(label) for label in SOURCE_LABEL.values())
    parts = re.split(rf"(?<=\S)\s+(?:{labels}): (?=[^\n]*\[\d+\]\s*$)", answer, maxsplit=1)
    body, reference = parts[0], parts[1] if len(parts) > 1 else ""
    statements = claims(body)
    if reference:
        statements.append(parse_markers(reference))
    supported: list[bool] = []
    precise: list[bool] = []
    for claim, markers in statements:
        if not re.search(r"\w{2}", claim):
            continue
        cited = [passages[m] for m in dict.fromkeys(markers) if m in passages]
        joint = bool(cited) and supports(claim, cited)
        supported.append(joint)
        if joint and len(cited) > 1:
            precise += [supports(claim, [p]) or not supports(claim, cited[:i] + cited[i + 1:]) for i, p in enumerate(cited)]
        else:
            precise += [joint] * len(cited)
    return {"sentence_supported": supported, "citation_precise": precise}


def _mean_of_means(lists: list[list[bool]]) -> float | None:
    """Average over answers of each answer's share of True (answers with an empty list skipped)."""
    shares = [sum(x) / len(x) for x in lists if x]
    return round(sum(shares) / len(shares), 4) if shares else None


def answer_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate answer metrics; see eval/README.md for the definitions."""
    if not records:
        return {}
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in answerable if not r["refused"]]
    citations = [ok for r in answered for ok in r["cited_ok"]]
    ttft = [r["ttft_s"] for r in records if not r.get("error")]
    total = [r["total_s"] for r in records if not r.get("error")]
    return {
        "n": len(records),
        "accuracy": _ratio(sum(r["correct"] for r in answerable), len(answerable)),
        "overall_accuracy": _ratio(sum(r["correct"] for r in records), len(records)),
        "refusal_accuracy": _ratio(sum(r["refused"] for r in unanswerable), len(unanswerable)),
        "false_refusal_rate": _ratio(sum(r["refused"] for r in answerable), len(answerable)),
        "answered_wrong": _ratio(sum(not r["refused"] and not r["correct"] for r in records), len(records)),
        "answer_sentences_p50": pct([r["sentences"] for r in answered if "sentences" in r], 0.5),
        "answer_similarity": _ratio(sum(r.get("similarity", 0.0) for r in answerable), len(answerable)),
        "citation_precision": _ratio(sum(citations), len(citations)),
        "citation_recall": _ratio(sum(any(r["cited_ok"]) for r in answered), len(answered)),
        "alce_citation_recall": _mean_of_means([r.get("sentence_supported", []) for r in answered]),
        "alce_citation_precision": _mean_of_means([r.get("citation_precise", []) for r in answered]),
        "ttft_p50_s": pct(ttft, 0.5),
        "ttft_p95_s": pct(ttft, 0.95),
        "total_p50_s": pct(total, 0.5),
        "total_p95_s": pct(total, 0.95),
        "tokens_mean": _ratio(sum(r.get("tokens", 0) for r in records), len(records)),
        "prompt_tokens_p50": pct([r.get("prompt_tokens", 0) for r in records], 0.5),
        "errors": sum(1 for r in records if r.get("error")),
    }


def _ratio(a: float, b: int) -> float | None:
    return round(a / b, 4) if b else None
