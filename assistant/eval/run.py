"""``assistant eval``: run backends over a QA file, append per-item results, write the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import AssistantError
from ..citations import Support
from ..embeddings import cosine
from ..lexical import WORD_RULES, LexicalIndex
from ..retrieval import HybridRetriever
from ..settings import Settings
from .metrics import (
    RetrievalSystem,
    alce_citations,
    answer_metrics,
    append_jsonl,
    by_group,
    load_qa,
    read_jsonl,
    results_path,
    retrieval_metrics,
    run_retrieval,
    score_answer,
)
from .report import write_report


def ours(retriever: HybridRetriever) -> RetrievalSystem:
    def search(query: str, n: int) -> list[dict[str, Any]]:
        return [
            {"chunk_id": d.id, "text": d.page_content, "score": d.metadata["score"],
             "haystack": d.page_content + " " + d.metadata["references"]}
            for d in retriever.search(query, n)
        ]

    return RetrievalSystem("hybrid", search)


def run_eval(
    settings: Settings,
    qa: Path,
    out: Path,
    backends: list[str],
    split: str = "all",
    retrieval_only: bool = False,
    baseline: bool = False,
    limit: int | None = None,
) -> int:
    items = load_qa(qa, split)[:limit]
    if not items:
        raise AssistantError(f"{qa}: no items in split {split!r}")
    out.mkdir(parents=True, exist_ok=True)
    retriever = HybridRetriever.for_settings(settings)
    summary: dict[str, Any] = {"qa": str(qa), "split": split, "items": len(items), "settings": {
        "k": settings.k, "fetch_k": settings.fetch_k, "chunk_sentences": settings.chunk_sentences,
        "embedding_model": settings.embedding_model, **settings.thresholds(),
        "lexical": {"word_rules": WORD_RULES, "k1": LexicalIndex.K1, "b": LexicalIndex.B}}}
    from .baseline import bm25_retrieval, textbook_retrieval

    systems = [ours(retriever), bm25_retrieval(retriever.chunks)]
    if baseline:
        systems.append(textbook_retrieval(settings))
    summary["retrieval"] = {}
    for system in systems:
        records = run_retrieval(items, system)
        summary["retrieval"][system.name] = retrieval_metrics(records)
        if system.name == "hybrid":
            _write_jsonl(out / "retrieval.jsonl", records)
    if not retrieval_only:
        summary["backends"] = {}
        for backend in backends:
            path = results_path(out, backend, len(backends) > 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            records = _run_backend(settings, retriever, backend, items, path)
            summary["backends"][backend] = {
                "all": answer_metrics(records),
                "by_kind": by_group(records, "kind", answer_metrics),
                "by_lang": by_group(records, "lang", answer_metrics),
                "by_added": by_group(records, "added", answer_metrics),
            }
        summary["model_adds"] = model_adds(out, backends)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_report(summary, out)
    _print_summary(summary)
    return 0


def model_adds(out: Path, backends: list[str]) -> dict[str, Any]:
    """Per model backend against ``extractive`` (same run): ids it gets right that quoting does not
    ("adds") and the reverse ("loses")."""
    if "extractive" not in backends or len(backends) < 2:
        return {}
    quoted = {r["id"]: r["correct"] for r in read_jsonl(results_path(out, "extractive", True))}
    found = {}
    for backend in backends:
        if backend == "extractive" or backend.startswith("baseline:"):
            continue
        mine = {r["id"]: r["correct"] for r in read_jsonl(results_path(out, backend, True))}
        found[backend] = {
            "adds": sorted(i for i, ok in mine.items() if ok and not quoted.get(i, True)),
            "loses": sorted(i for i, ok in mine.items() if not ok and quoted.get(i, False)),
        }
    return found


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _run_backend(settings: Settings, retriever: HybridRetriever, backend: str, items: list[dict], path: Path) -> list[dict]:
    from ..chain import build_chain

    wanted = {i["id"] for i in items}
    done = {r["id"]: r for r in read_jsonl(path) if r["id"] in wanted}
    todo = [i for i in items if i["id"] not in done]
    if todo:
        if backend.startswith("baseline:"):
            from ..backends import make_chat_model
            from .baseline import BaselineChain

            chain = BaselineChain(backend, settings, make_chat_model("local", settings), retriever)
        else:
            chain = build_chain(settings, backend, retriever)
            # Warm, as `assistant serve` is when a person asks: models loaded, prompt cached,
            # sentences embedded. The times below are then per question, not per start.
            chain.warm_up()
            chain.embed_sentences()
        correct = sum(r["correct"] for r in done.values())
        bar = tqdm(todo, desc=backend, unit="q", initial=len(done), total=len(items))
        for n, item in enumerate(bar, len(done) + 1):
            history = [tuple(turn) for turn in item.get("history", [])]
            try:
                result = chain.invoke(item["question"], history).to_dict()
            except AssistantError as exc:
                result = {"answer": "", "refused": False, "footnotes": [], "citations": [], "ttft_s": 0.0,
                          "total_s": 0.0, "backend": backend, "error": str(exc), "retrieved": []}
            record = {"id": item["id"], "question": item["question"], "kind": item["kind"], "lang": item["lang"],
                      "answerable": item["answerable"], "split": item["split"], "added": item["added"],
                      "reference": item["answer"]}
            record |= result
            record |= score_answer(item, result)
            append_jsonl(path, [record])
            done[item["id"]] = record
            correct += record["correct"]
            bar.set_postfix(acc=f"{correct / n:.2f}")
    records = [done[i["id"]] for i in items]
    _fill_similarity(records, retriever.store.embeddings)
    _fill_alce(records, Support.for_settings(settings, lambda: retriever.store.embeddings))
    scratch = path.with_suffix(".jsonl.tmp")  # with the judgements, replacing the appended lines at once
    _write_jsonl(scratch, records)
    scratch.replace(path)
    return records


def _fill_alce(records: list[dict], support: Support) -> None:
    """Per-sentence citation judgements (ALCE-style) for answered items that do not have them yet."""
    for record in records:
        if "sentence_supported" in record or record["refused"] or not record["answer"]:
            continue
        record |= alce_citations(record["answer"], record.get("footnotes", []), support.holds)


def _fill_similarity(records: list[dict], embeddings: Any) -> None:
    """Cosine of answer and reference answer (both as documents) for answerable items; 0 when refused."""
    for record in records:
        if "similarity" in record or not record["answerable"]:
            continue
        if record["refused"] or not record["answer"]:
            record["similarity"] = 0.0
            continue
        answer, reference = embeddings.embed_documents([record["answer"], record["reference"]])
        record["similarity"] = round(cosine(answer, reference), 4)


def _print_summary(summary: dict[str, Any]) -> None:
    for name, metrics in summary["retrieval"].items():
        print(f"retrieval {name:10} " + " ".join(f"{k}={v}" for k, v in metrics.items()))
    for backend, metrics in summary.get("backends", {}).items():
        print(f"answers  {backend:12} " + " ".join(f"{k}={v}" for k, v in metrics["all"].items()))
