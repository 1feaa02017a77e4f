"""What a person waits for in the browser: a 6-turn conversation with a freshly started app.

Starts ``assistant serve`` (default backend unless ``--backend``), opens the page in Debian's
headless Chromium through Playwright, and holds one conversation: standalone questions, a
follow-up, an English question and an unanswerable one. Per turn it records, from the moment
Enter is pressed:

- ``visible_s``: the first content in the answer's place (the cited evidence, or the answer),
- ``draft_s``: the first model token (the draft shown as unchecked), if any,
- ``settled_s``: the verified answer, with nothing pending.

It writes ``chat.json`` and ``chat.png`` to ``--out``. Turn 1 is the first answer after the
start (prompt state from the cache directory when it exists), so it is reported on its own.

    python eval/bench_chat.py --out runs/chat
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from assistant.eval.servers import ServerError, chat_page, free_port, start_serve

TURNS = [
    "Wo wurden die deutschen Piloten ausgebildet?",
    "Und wie viele wurden dort ausgebildet?",
    "Warum hatten Stresemann und Schubert Bedenken?",
    "Which newspaper revealed the cooperation in 1926?",
    "Wie viele Panzer wurden in Kama insgesamt gebaut?",
    "Unter welchen Tarnbezeichnungen wurden Panzer entwickelt?",
]
# Timed inside the page, so the benchmark does not steal the 2 cores it measures (polling the page
# over Playwright every 30 ms did): Enter stamps the start, a MutationObserver stamps the first
# visible content, the first draft token and the settled answer under the newest question.
OBSERVE = """(asked) => {
  const t = {start: performance.now(), visible: null, draft: null, settled: null, text: ''};
  window.__turn = t;
  document.querySelector('#question textarea').addEventListener(
    'keydown', (e) => { if (e.key === 'Enter') t.start = performance.now(); }, {once: true, capture: true});
  const check = () => {
    const all = [...document.querySelectorAll('#chat .message-row')];
    let last = -1, users = 0;
    all.forEach((row, i) => { if (row.classList.contains('user-row')) { last = i; users += 1; } });
    if (users <= asked) return;
    const bot = all.slice(last + 1).find(row => row.classList.contains('bot-row'));
    const text = bot ? bot.innerText.trim() : '';
    const now = (performance.now() - t.start) / 1000;
    if (!text || text === '…' || text.startsWith('Das Modell lädt noch')) return;  // nothing of the answer yet
    if (t.visible === null) t.visible = now;
    if (text.includes('Entwurf') && t.draft === null) t.draft = now;
    if (!text.includes('▌') && !text.includes('wird formuliert')) {
      t.settled = now; t.text = text; t.observer.disconnect();
    }
  };
  t.observer = new MutationObserver(check);
  t.observer.observe(document.querySelector('#chat'), {childList: true, subtree: true, characterData: true});
}"""
USERS = "() => document.querySelectorAll('#chat .message-row.user-row').length"
RESULT = "() => { const t = window.__turn; return {visible: t.visible, draft: t.draft, settled: t.settled, text: t.text}; }"


def start(backend: str | None, port: int, log: Path) -> subprocess.Popen:
    try:
        return start_serve(port, log, {"ASSISTANT_BACKEND": backend} if backend else {})
    except ServerError as exc:
        raise SystemExit(str(exc)) from None


def turn(page, question: str, timeout: float) -> dict:
    box = page.locator("#question textarea")
    box.fill(question)
    page.evaluate(OBSERVE, page.evaluate(USERS))
    box.press("Enter")
    started = time.perf_counter()
    found: dict = {"question": question, "visible_s": None, "draft_s": None, "settled_s": None}
    while time.perf_counter() - started < timeout:
        time.sleep(0.25)
        state = page.evaluate(RESULT)
        if state["settled"] is not None:
            for key in ("visible", "draft", "settled"):
                found[f"{key}_s"] = None if state[key] is None else round(state[key], 3)
            found["answer"] = state["text"]
            return found
    found["answer"] = "(timed out)"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help="backend to serve (default: the configured one)")
    parser.add_argument("--out", type=Path, default=Path("runs/chat"), help="folder for chat.json and chat.png")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one answer")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    launched = time.perf_counter()
    proc = start(args.backend, port, args.out / "server.log")
    page_up = time.perf_counter() - launched
    turns = []
    try:
        with chat_page(port) as page:
            for question in TURNS:
                turns.append(turn(page, question, args.timeout))
                print(json.dumps(turns[-1], ensure_ascii=False))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    later = turns[1:]

    def p50(key: str) -> float | None:
        values = [t[key] for t in later if t[key] is not None]
        return round(statistics.median(values), 3) if values else None

    summary = {"backend": args.backend or "default", "server_up_s": round(page_up, 2), "first_turn": turns[0],
               "later_turns_p50": {k: p50(k) for k in ("visible_s", "draft_s", "settled_s")}, "turns": turns}
    (args.out / "chat.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plot(turns, args.out / "chat.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "turns"}, ensure_ascii=False))
    return 0


def plot(turns: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    xs = range(1, len(turns) + 1)
    for key, label in (("visible_s", "first visible content"), ("draft_s", "first model token"),
                       ("settled_s", "settled answer")):
        ax.plot(xs, [t[key] if t[key] is not None else float("nan") for t in turns], marker="o", label=label)
    ax.set_xticks(list(xs), [f"{i}" for i in xs])
    ax.set_xlabel("turn (1 = first question after start)")
    ax.set_ylabel("seconds after Enter")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("What a person waits for, per turn (headless Chromium)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
