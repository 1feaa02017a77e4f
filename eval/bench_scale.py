"""Scale benchmark: how ingest, index size, memory, retrieval latency and recall grow with the
corpus (make bench-scale; not part of the test run).

Each size N (chunks) is the article plus synthetic German distractor passages made of word
trigrams recombined from the article (same vocabulary and topic, no sentence copied, numbers
changed), so the article's own passages stay findable but compete with on-topic noise.

The default embedder runs at a few chunks per second on a 2-core CPU, so 10^5 real embeddings
would take hours. A pool of ``--pool`` distractor passages (default 1,000) is therefore embedded
for real once (timed: that is the embedding throughput, cached in ``OUT/pool.npz``); larger
corpora reuse the pool's passages with their numbers changed and each variant gets its source
passage's vector. Everything else — Chroma writes, index on disk, peak memory, start-up load,
dense/lexical/fused latency, recall on ``eval/qa.jsonl`` — is measured at every size, each in its
own process. Ingest time at a size = measured store time + N / measured embedding rate.
Reusing a pool passage k times with the same vector keeps the expected number of distractors
ranked above a gold passage what a k-times larger corpus from the same distribution would give;
recall beyond the pool size is an estimate in that sense.

    .venv/bin/python eval/bench_scale.py --sizes 100 1000 10000 100000 --out runs/scale
    .venv/bin/python eval/bench_scale.py --plot-only --out runs/scale
    .venv/bin/python eval/bench_scale.py --server --sizes 1000 100000 --out runs/scale-server   # through `chroma run`
    .venv/bin/python eval/bench_scale.py --throughput 256 --out runs/scale-server   # in process vs Infinity

``--server`` stores through a ``chroma run`` server started per size (its peak memory is recorded);
``--throughput`` embeds the same passages in process and through Infinity serving the same model
files (``make .venv-infinity``) and reports both rates and their agreement.

Writes ``results.json`` (one entry per size), ``scale.md`` (table) and ``scale.png`` (log-log).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = ROOT / "corpus" / "geheime-zusammenarbeit-rote-armee-reichswehr.txt"
PARAGRAPHS_PER_DOC = 10


def distractor_pool(size: int, sentences_per_passage: int, seed: int = 0) -> list[str]:
    """``size`` passages of sentences made of word trigrams taken from different article sentences."""
    from assistant.corpus import read_document

    article = read_document(ARTICLE)
    clean = re.compile(r"[^\w\-–,]")  # no dots, brackets or markers: one passage stays one chunk
    words = [[clean.sub("", w) for w in s.text.split() if clean.sub("", w)] for p in article.paragraphs for s in p.sentences]
    trigrams = [w[i : i + 3] for w in words for i in range(0, max(1, len(w) - 2), 3)]
    rng = random.Random(seed)

    def sentence() -> str:
        parts = [w for t in rng.sample(trigrams, rng.randint(3, 6)) for w in t]
        text = " ".join(parts)
        return text[0].upper() + text[1:] + "."

    return [" ".join(sentence() for _ in range(sentences_per_passage)) for _ in range(size)]


def renumber(text: str, rng: random.Random) -> str:
    return re.sub(r"\d+", lambda m: str(rng.randint(1, 10 ** len(m.group()))), text)


class PoolEmbeddings:
    """The real embedder, except that pool passages and their variants get the pool's vectors."""

    def __init__(self, real, vectors: dict[str, list[float]]) -> None:
        self.real, self.vectors = real, vectors
        self.embedded_for_real = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.vectors]
        self.embedded_for_real += len(missing)
        found = dict(zip(missing, self.real.embed_documents(missing))) if missing else {}
        return [self.vectors.get(t) or found[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.real.embed_query(text)


def embed_pool(out: Path, size: int, sentences: int) -> dict:
    """Embed the pool with the default embedder once; returns texts, vectors and the measured rate."""
    import numpy as np
    from tqdm import tqdm

    from assistant.embeddings import load_embeddings
    from assistant.settings import load_settings

    texts = distractor_pool(size, sentences)
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = out / "pool.npz"
    if cache.exists():
        saved = np.load(cache)
        if str(saved["key"]) == key:
            return {"texts": texts, "vectors": saved["vectors"], "rate": float(saved["rate"])}
    settings = load_settings()
    embeddings = load_embeddings(settings.embedding_model, settings.cache_dir)
    embeddings.embed_documents(["Aufwärmen"])
    vectors = []
    start = time.perf_counter()
    for i in tqdm(range(0, size, 32), desc="embedding the distractor pool", unit="batch", file=sys.stderr):
        vectors += embeddings.embed_documents(texts[i : i + 32])
    rate = size / (time.perf_counter() - start)
    np.savez(cache, key=key, vectors=np.array(vectors, dtype=np.float32), rate=rate)
    return {"texts": texts, "vectors": np.array(vectors, dtype=np.float32), "rate": rate}


@contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``chroma run`` on a free loopback port, storing in ``path``; (its URL, its process)."""
    from assistant.eval.servers import free_port, start_chroma

    port = free_port()
    proc = start_chroma(path, port, log)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a running process (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(size: int, out: Path, pool_size: int, server: bool = False) -> dict:
    """Build and query an index of ``size`` chunks in a fresh directory (through ``chroma run``
    when ``server``); runs in a child process."""
    from tqdm import tqdm

    from assistant.corpus import parse_text, read_document
    from assistant.embeddings import load_embeddings
    from assistant.eval.metrics import (
        RetrievalSystem,
        load_qa,
        pct,
        retrieval_metrics,
        retrieval_query,
        run_retrieval,
    )
    from assistant.eval.run import ours
    from assistant.retrieval import HybridRetriever
    from assistant.settings import load_settings
    from assistant.store import Store

    settings = load_settings()
    pool = embed_pool(out, pool_size, settings.chunk_sentences)
    rng = random.Random(size)
    vectors: dict[str, list[float]] = {}
    passages = []
    for i in range(max(0, size - 11)):
        source = i % pool_size
        text = pool["texts"][source] if i < pool_size else renumber(pool["texts"][source], rng)
        vectors[text] = pool["vectors"][source].tolist()
        passages.append(text)
    docs = [read_document(ARTICLE)] + [
        parse_text(f"Synthetisches Dokument {d}\n\n" + "\n\n".join(passages[d : d + PARAGRAPHS_PER_DOC]), f"synth-{d:06d}")
        for d in range(0, len(passages), PARAGRAPHS_PER_DOC)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as home, ExitStack() as stack:
        chroma_url, chroma_proc = stack.enter_context(chroma_server(Path(home) / "server", out / "chroma.log")) if server else (None, None)
        settings = load_settings(home=Path(home), chroma_url=chroma_url)
        real = load_embeddings(settings.embedding_model, settings.cache_dir)
        real.embed_documents(["Aufwärmen"])  # load the model outside the timing
        embeddings = PoolEmbeddings(real, vectors)
        store = Store(settings, embeddings)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        with tqdm(total=size, desc=f"ingest {size:,}", unit="chunk", file=sys.stderr) as bar:
            report = store.ingest(docs, progress=lambda done, total: bar.update(done))
        store_s = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        disk_mb = sum(p.stat().st_size for p in Path(home).rglob("*") if p.is_file()) / 2**20
        server_mb = peak_rss_mb(chroma_proc.pid) if chroma_proc else None

        retriever = HybridRetriever.for_settings(settings, store)
        start = time.perf_counter()
        retriever.refresh()
        load_s = time.perf_counter() - start
        items = [i for i in load_qa(ROOT / "eval" / "qa.jsonl") if i["answerable"]]
        queries = [retrieval_query(i) for i in items]
        for q in queries:  # embed every query once: the timings below are the index's, not the model's
            real.embed_query(q)
        timings: dict[str, list[float]] = {"dense": [], "lexical": [], "fused": []}
        lexical = retriever._lexical
        assert lexical is not None
        for q in queries:
            for name, call in (
                ("dense", lambda q=q: store.dense_search(q, settings.fetch_k)),
                ("lexical", lambda q=q: lexical.search(q, settings.fetch_k)),
                ("fused", lambda q=q: retriever.search(q)),
            ):
                t = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - t) * 1000)
        recall = retrieval_metrics(run_retrieval(items, ours(retriever)))
        alone = {
            "dense": lambda q, n: [retriever.chunk(i) for i, _ in store.dense_search(q, n)],
            "lexical": lambda q, n: [retriever.chunk(i) for i, _ in lexical.search(q, n)],
        }
        single = {
            name: retrieval_metrics(run_retrieval(items, RetrievalSystem(name, lambda q, n, find=find: [
                {"chunk_id": c.id, "text": c.text, "score": 0.0, "haystack": c.text + " " + " ".join(c.references.values())}
                for c in find(q, n)
            ])))
            for name, find in alone.items()
        }
    embed_s = report.chunks / pool["rate"]
    return {
        "chunks": report.chunks,
        "via": "chroma run" if server else "local directory",
        "server_peak_rss_mb": round(server_mb) if server_mb else None,
        "documents": report.documents,
        "embedded_for_real": embeddings.embedded_for_real,
        "embed_chunks_per_s": round(pool["rate"], 2),
        "store_s": round(store_s, 2),
        "ingest_s": round(embed_s + store_s, 1),
        "peak_rss_mb": round(peak_mb),
        "rss_before_ingest_mb": round(rss_before),
        "disk_mb": round(disk_mb, 1),
        "load_s": round(load_s, 3),
        **{f"{name}_p50_ms": pct(values, 0.5) for name, values in timings.items()},
        **{f"{name}_p95_ms": pct(values, 0.95) for name, values in timings.items()},
        "recall@3": recall["recall@3"],
        "recall@5": recall["recall@5"],
        "mrr": recall["mrr"],
        "dense_recall@5": single["dense"]["recall@5"],
        "lexical_recall@5": single["lexical"]["recall@5"],
        "queries": len(queries),
    }


def throughput(out: Path, n: int) -> dict:
    """Chunks/s embedding ``n`` distractor passages at ingest's batch size: in process, and through
    Infinity serving the same model files on this machine (same CPU: the ratio is the protocol)."""
    from assistant import models
    from assistant.embeddings import cosine, load_embeddings
    from assistant.eval.servers import free_port, start_infinity
    from assistant.settings import load_settings

    settings = load_settings()
    texts = distractor_pool(n, settings.chunk_sentences, seed=1)
    batch = settings.embedding_batch
    rates = {}
    port = free_port()
    proc = start_infinity(models.require(settings.embedding_model, settings.cache_dir), settings.embedding_model, port,
                          out / "infinity.log")
    try:
        local = load_embeddings(settings.embedding_model, settings.cache_dir)
        served = load_embeddings(f"openai/{settings.embedding_model}", settings.cache_dir, f"http://127.0.0.1:{port}",
                                 600.0, batch)
        vectors = {}
        for name, embedder in (("in process", local), ("Infinity on loopback", served)):
            embedder.embed_documents(["Aufwärmen"])
            start = time.perf_counter()
            vectors[name] = [v for i in range(0, n, batch) for v in embedder.embed_documents(texts[i : i + batch])]
            rates[name] = round(n / (time.perf_counter() - start), 2)
        agree = min(cosine(a, b) for a, b in zip(*vectors.values()))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    result = {"passages": n, "batch": batch, "chunks_per_s": rates, "min_cosine": round(agree, 4),
              "ratio_server_to_local": round(rates["Infinity on loopback"] / rates["in process"], 2)}
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


COLUMNS = ["chunks", "via", "server_peak_rss_mb", "ingest_s", "store_s", "peak_rss_mb", "disk_mb", "load_s", "dense_p50_ms",
           "dense_p95_ms", "lexical_p50_ms", "lexical_p95_ms", "fused_p50_ms", "fused_p95_ms", "recall@3", "recall@5", "mrr", "dense_recall@5", "lexical_recall@5"]


def growth(rows: list[dict], key: str) -> float | None:
    """Slope of log(key) against log(chunks) between the smallest and largest size."""
    import math

    a, b = rows[0], rows[-1]
    if len(rows) < 2 or not a.get(key) or not b.get(key):
        return None
    return round(math.log(b[key] / a[key]) / math.log(b["chunks"] / a["chunks"]), 2)


def write_outputs(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["chunks"])
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    slopes = {k: growth(rows, k) for k in ("ingest_s", "disk_mb", "peak_rss_mb", "dense_p50_ms", "lexical_p50_ms", "fused_p50_ms", "load_s", "store_s")}
    lines += ["", "Growth exponent b in cost ∝ chunks^b (smallest to largest size): "
              + ", ".join(f"{k} {v}" for k, v in slopes.items())]
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    x = [r["chunks"] for r in rows]
    fig, (left, right, recall) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("ingest_s", "ingest (s)"), ("disk_mb", "index on disk (MB)"), ("peak_rss_mb", "peak memory (MB)"),
                       ("load_s", "load chunks + build BM25 at start (s)")):
        left.plot(x, [r[key] for r in rows], marker="o", label=label)
    for key, label in (("dense_p50_ms", "dense (Chroma HNSW)"), ("lexical_p50_ms", "lexical (in-memory BM25)"),
                       ("fused_p50_ms", "fused retriever")):
        right.plot(x, [r[key] for r in rows], marker="o", label=label)
    for ax, title in ((left, "Build cost"), (right, "Retrieval latency p50 (ms)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks in the index")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for key, label in (("recall@5", "fused (ours)"), ("dense_recall@5", "dense alone"), ("lexical_recall@5", "lexical alone")):
        recall.plot(x, [r.get(key) for r in rows], marker="o", label=label)
    recall.set_xscale("log")
    recall.set_ylim(0, 1.02)
    recall.set_xlabel("chunks in the index")
    recall.set_title("recall@5 on eval/qa.jsonl (on-topic distractors)")
    recall.grid(True, which="both", alpha=0.3)
    recall.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=110)
    plt.close(fig)
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "scale")
    parser.add_argument("--pool", type=int, default=1000, help="distractor passages embedded for real (default 1000)")
    parser.add_argument("--server", action="store_true", help="store through `chroma run` instead of a local directory")
    parser.add_argument("--throughput", type=int, metavar="N",
                        help="only: embed N passages in process and through Infinity, chunks/s each")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plot-only", action="store_true", help="redraw table and plot from results.json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.out, args.pool, args.server)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.throughput:
        print(json.dumps(throughput(args.out, args.throughput), indent=2))
        return 0
    if not args.plot_only:
        from assistant.settings import load_settings

        embed_pool(args.out, args.pool, load_settings().chunk_sentences)  # once, before the sizes (each child reads the cache)
    saved = args.out / "results.json"
    rows = {r["chunks"]: r for r in (json.loads(saved.read_text()) if saved.exists() else [])}
    if not args.plot_only:
        for size in args.sizes:
            print(f"size {size:,} chunks …", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, __file__, "--one", str(size), "--out", str(args.out), "--pool", str(args.pool)]
                                  + (["--server"] if args.server else []), check=True, stdout=subprocess.PIPE, text=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows[row["chunks"]] = row
            write_outputs(list(rows.values()), args.out)  # after each size, so a long run keeps what it measured
            print(f"  ingest {row['ingest_s']} s, recall@5 {row['recall@5']}, fused p50 {row['fused_p50_ms']} ms",
                  file=sys.stderr, flush=True)
    write_outputs(list(rows.values()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
