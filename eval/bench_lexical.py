"""Lexical index at 10^3..10^5 chunks: what an app start costs, and a BM25 query (make bench-lexical).

The chunks are the article's plus the scale benchmark's on-topic distractors (``bench_scale``), the
queries are the questions of ``eval/qa.jsonl``. For each size: build (at ingest), save, start-up
load (memory-mapped), resident memory after load, query p50/p95. With ``--before CHECKOUT`` (a
checkout of the commit before ``bm25s``, ef82bf8) the hand-written index of that checkout is measured
on the same chunks and queries in the same run: it was rebuilt in memory at every start, so its
start-up load is its build.

    .venv/bin/python eval/bench_lexical.py --sizes 1000 10000 100000 --before /tmp/old --out runs/lexical
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))


def corpus(size: int) -> tuple[list[str], list[str]]:
    """The article's chunk texts plus distractors up to ``size`` texts, and the questions."""
    from bench_scale import ARTICLE, distractor_pool, renumber

    from assistant.chunking import chunk_documents
    from assistant.corpus import read_document
    from assistant.eval.metrics import load_qa, retrieval_query

    article = [c.text for c in chunk_documents([read_document(ARTICLE)], 3)]
    pool = distractor_pool(1000, 3)
    rng = random.Random(size)
    texts = article + [pool[i % 1000] if i < 1000 else renumber(pool[i % 1000], rng) for i in range(size - len(article))]
    queries = [retrieval_query(i) for i in load_qa(ROOT / "eval" / "qa.jsonl")]
    return texts, queries


def pct(values: list[float], q: float) -> float:
    """As ``assistant.eval.metrics.pct`` (not importable by the old checkout this also runs)."""
    values = sorted(values)
    return round(values[round(q * (len(values) - 1))], 2)


def drop_page_cache(folder: Path) -> None:
    """Ask the kernel to forget the folder's files, so a load reads them from disk (as at a start)."""
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())  # only written-back pages can be dropped
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def measure(inputs: Path, before: str | None) -> dict:
    """One size in this process (run as a child, so memory is this size's alone), on the texts and
    queries the parent wrote to ``inputs`` (so both implementations see the same ones). Start-up load
    is the build (before) or the memory-mapped load from a cold page cache (bm25s), each with the
    first query."""
    if before:
        sys.path.insert(0, before)
    texts, queries = json.loads(inputs.read_text(encoding="utf-8"))
    ids = [str(i) for i in range(len(texts))]
    row: dict = {"chunks": len(texts), "impl": "before" if before else "bm25s"}
    if before:
        from assistant.retrieval import LexicalIndex as Old

        assert Old.__module__ == "assistant.retrieval" and before in sys.modules["assistant"].__file__
        start = time.perf_counter()
        index = Old(texts)
        row["build_s"] = round(time.perf_counter() - start, 2)
        index.search(queries[0], 20)
        row["load_s"] = round(time.perf_counter() - start, 3)
        search = index.search
    else:
        from assistant.lexical import LexicalIndex

        start = time.perf_counter()
        built = LexicalIndex.build(texts, ids)
        row["build_s"] = round(time.perf_counter() - start, 2)
        with tempfile.TemporaryDirectory() as tmp:
            built.save(Path(tmp) / "index")
            del built
            drop_page_cache(Path(tmp) / "index")
            start = time.perf_counter()
            index = LexicalIndex.load(Path(tmp) / "index")
            index.search(queries[0], 20)  # the first query reads the mapped pages
            row["load_s"] = round(time.perf_counter() - start, 3)
            row["disk_mb"] = round(sum(p.stat().st_size for p in Path(tmp).rglob("*")) / 2**20, 1)
        search = index.search
    row["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q, 20)
        times.append((time.perf_counter() - start) * 1000)
    row["query_p50_ms"], row["query_p95_ms"] = pct(times, 0.5), pct(times, 0.95)
    return row


def markdown(rows: list[dict]) -> str:
    """The README table: before → after (×ratio) per size."""
    lines = ["| chunks | start-up load s, before → bm25s | query p50 ms | query p95 ms | peak RSS MB (bm25s: build + load) | build at ingest s |",
             "|---|---|---|---|---|---|"]
    for size in sorted({r["chunks"] for r in rows}):
        new = next(r for r in rows if r["chunks"] == size and r["impl"] == "bm25s")
        old = next((r for r in rows if r["chunks"] == size and r["impl"] == "before"), None)

        def cell(key: str, new=new, old=old) -> str:
            if not old:
                return f"{new[key]}"
            return f"{old[key]} → {new[key]} (×{new[key] / old[key]:.2g})" if old[key] else f"{old[key]} → {new[key]}"

        lines.append(f"| {size:,} | {cell('load_s')} | {cell('query_p50_ms')} | {cell('query_p95_ms')} | {cell('rss_mb')} | {new['build_s']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="chunk counts")
    parser.add_argument("--before", help="checkout of the commit before bm25s, measured in the same run")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "lexical", help="output folder")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.before)))
        return
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        inputs = args.out / f"inputs-{size}.json"
        inputs.write_text(json.dumps(corpus(size)), encoding="utf-8")
        for before in ([args.before] if args.before else []) + [None]:
            cmd = [sys.executable, __file__, "--one", str(inputs.resolve())] + (["--before", before] if before else [])
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=before or ROOT)
            if done.returncode:
                sys.exit(f"measuring {size:,} chunks failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
        inputs.unlink()
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (args.out / "lexical.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
