"""Language identification: accuracy of ``detect_language`` on the eval questions and on short
questions in several languages (``eval/languages.jsonl``), and its time per question.

    .venv/bin/python eval/bench_language.py                    # this checkout
    .venv/bin/python eval/bench_language.py --before /tmp/old  # and a checkout to compare, same run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = {"eval questions (qa.jsonl)": ROOT / "eval" / "qa.jsonl", "short questions (languages.jsonl)": ROOT / "eval" / "languages.jsonl"}


def measure() -> dict:
    from assistant.chain import detect_language

    detect_language("Warm-up?")
    out = {}
    for name, path in SETS.items():
        items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        start = time.perf_counter()
        got = [detect_language(i["question"]) for i in items]
        ms = (time.perf_counter() - start) * 1000 / len(items)
        wrong = [f"{i['lang']}→{g}: {i['question'][:50]}" for i, g in zip(items, got) if g != i["lang"]]
        out[name] = {"n": len(items), "languages": len({i["lang"] for i in items}),
                     "accuracy": round(1 - len(wrong) / len(items), 3), "ms_per_question": round(ms, 3), "wrong": wrong}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a checkout to measure on the same questions in the same run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.path.insert(0, args.one)
        print(json.dumps(measure()))
        return
    for label, cwd in ([("before", args.before)] if args.before else []) + [("this checkout", str(ROOT))]:
        done = subprocess.run([sys.executable, __file__, "--one", cwd], capture_output=True, text=True, cwd=cwd)
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        for name, row in json.loads(done.stdout.strip().splitlines()[-1]).items():
            print(f"{label:14s} {name:34s} n={row['n']:3d} languages={row['languages']} accuracy={row['accuracy']:.3f} "
                  f"{row['ms_per_question']:.3f} ms/question")
            for line in row["wrong"]:
                print(f"    {line}")


if __name__ == "__main__":
    main()
