"""Load test: N concurrent chat sessions against `assistant serve` on loopback (make loadtest).

Each session holds its own two-turn conversation (a question, then a follow-up that only makes
sense with its own history) and checks that both answers belong to it. Prints a table of
errors, wrong-conversation answers, throughput and latency per N.

    .venv/bin/python eval/loadtest.py --backend extractive --sessions 1 4 16 32
    .venv/bin/python eval/loadtest.py --backend local --sessions 1 2 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assistant.eval.servers import free_port, start_serve
from assistant.ui import plain_text

CONVERSATIONS = [
    ("Wo wurden die deutschen Piloten ausgebildet?", "Wie viele waren es?", "hundert"),
    ("Welche Zeitschrift veröffentlichte 1929 den Artikel über die Luftfahrt?", "Was passierte mit ihrem Chefredakteur?", "Ossietzky"),
    ("Wann wurde der Berliner Vertrag geschlossen?", "Was sagten sich die Staaten darin zu?", "Neutralität"),
    ("Which newspaper revealed the cooperation in 1926?", "Did the reporting harm German foreign policy?", "Außenpolitik"),
    ("Welche Panzerschule wird genannt?", "Welche späteren Befehlshaber kamen von dort?", "Guderian"),
    ("Wer war Außenminister 1926?", "Warum hatte er Bedenken?", "Locarno"),
]


def session(client, backend: str, n: int) -> tuple[list[float], int, int]:
    """One two-turn conversation; (latencies, errors, 1 if the answers are not its own)."""
    first, follow, expected = CONVERSATIONS[n % len(CONVERSATIONS)]
    latencies, errors, mixed = [], 0, 0
    history: list = []
    for question in (first, follow):
        start = time.perf_counter()
        try:
            history, _ = client.predict(question, history, backend, 4, False, "", api_name="/ask")
        except Exception:  # noqa: BLE001 - counted, not fatal
            errors += 1
            continue
        latencies.append(time.perf_counter() - start)
    asked = [plain_text(m.get("content")) for m in history if m.get("role") == "user"]
    answers = " ".join(plain_text(m.get("content")) for m in history if m.get("role") == "assistant")
    # Its own two questions, in order, and the follow-up answered from its own conversation.
    if not errors and (asked != [first, follow] or expected not in answers):
        mixed += 1
    return latencies, errors, mixed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="extractive")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16, 32])
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="loadtest-")) / "server.log"
    server = start_serve(port, log, {"ASSISTANT_BACKEND": args.backend, "ASSISTANT_CONCURRENCY": "4"})
    url = f"http://127.0.0.1:{port}/"
    try:
        from gradio_client import Client

        warm = Client(url, verbose=False)
        for i in range(len(CONVERSATIONS)):  # warm caches: each conversation once, alone
            session(warm, args.backend, i)
        print(f"backend {args.backend}\n\n| sessions | answers | errors | wrong conversation | answers/s | p50 s | p95 s |\n|---|---|---|---|---|---|---|")
        for n in args.sessions:
            with ThreadPoolExecutor(max_workers=n) as pool:
                clients = list(pool.map(lambda _: Client(url, verbose=False), range(n)))
                start = time.perf_counter()
                results = list(pool.map(session, clients, [args.backend] * n, range(n)))
            wall = time.perf_counter() - start
            lat = sorted(x for r in results for x in r[0])
            p95 = lat[min(len(lat) - 1, int(0.95 * (len(lat) - 1) + 0.5))] if lat else float("nan")
            print(f"| {n} | {len(lat)} | {sum(r[1] for r in results)} | {sum(r[2] for r in results)} | "
                  f"{len(lat) / wall:.2f} | {statistics.median(lat) if lat else float('nan'):.2f} | {p95:.2f} |", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
