"""report.md with tables, ratios against the baselines and PNG plots; ``--compare`` of two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .metrics import read_jsonl, results_path

ANSWER_KEYS = ["accuracy", "answer_similarity", "refusal_accuracy", "false_refusal_rate", "answered_wrong",
               "citation_precision", "citation_recall",
               "alce_citation_precision", "alce_citation_recall",
               "ttft_p50_s", "ttft_p95_s", "total_p50_s", "total_p95_s", "tokens_mean", "prompt_tokens_p50", "answer_sentences_p50"]
HIGHER_IS_BETTER = {"accuracy", "answer_similarity", "refusal_accuracy", "citation_precision", "citation_recall",
                    "alce_citation_precision", "alce_citation_recall"}


def _plots(summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = summary.get("backends") or {}
    if not backends:
        return []
    files = []
    kinds = sorted({k for m in backends.values() for k in m["by_kind"]})
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(backends)
    for i, (name, m) in enumerate(backends.items()):
        values = [(m["by_kind"].get(k, {}).get("overall_accuracy") or 0) for k in kinds]
        ax.bar([x + i * width for x in range(len(kinds))], values, width, label=name)
    ax.set_xticks([x + width * (len(backends) - 1) / 2 for x in range(len(kinds))], kinds, rotation=20)
    ax.set_ylabel("accuracy (refusal for unanswerable)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy by question kind")
    fig.tight_layout()
    fig.savefig(out / "accuracy_by_kind.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_by_kind.png")

    several = len(backends) > 1
    fig, ax = plt.subplots(figsize=(10, 4))
    data = [[r["total_s"] for r in read_jsonl(results_path(out, b, several)) if not r.get("error")] or [0] for b in backends]
    ax.boxplot(data, tick_labels=list(backends), showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("seconds per answer (log)")
    ax.set_title("Latency per answer")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    files.append("latency.png")
    return files


def _ratio_lines(backends: dict[str, Any]) -> list[str]:
    ours = [b for b in backends if not b.startswith("baseline:")]
    bases = [b for b in backends if b.startswith("baseline:")]
    lines = []
    for mine in ours:
        for base in bases:
            a, b = backends[mine]["all"], backends[base]["all"]
            parts = []
            for key in ("accuracy", "citation_precision", "alce_citation_recall", "refusal_accuracy", "ttft_p50_s", "total_p50_s"):
                if a.get(key) is None or not b.get(key):
                    continue
                ratio = a[key] / b[key]
                better = ratio > 1 if key in HIGHER_IS_BETTER else ratio < 1
                verdict = "same" if round(ratio, 2) == 1 else "better" if better else "worse"
                parts.append(f"{key} ×{ratio:.2f} ({verdict})")
            lines.append(f"- **{mine}** vs {base}: " + ", ".join(parts))
    return lines


def write_report(summary: dict[str, Any], out: Path) -> Path:
    lines = [f"# Eval report\n\nQA file `{summary['qa']}`, split `{summary['split']}`, {summary['items']} items. "
             f"Settings: `{json.dumps(summary['settings'])}`.\n"]
    lines.append("## Retrieval\n\n| system | recall@1 | recall@3 | recall@4 | recall@5 | MRR |\n|---|---|---|---|---|---|")
    for name, m in summary["retrieval"].items():
        lines.append(f"| {name} | {m.get('recall@1')} | {m.get('recall@3')} | {m.get('recall@4')} | {m.get('recall@5')} | {m.get('mrr')} |")
    backends = summary.get("backends") or {}
    if backends:
        lines.append("\n## Answers\n\n| backend | " + " | ".join(ANSWER_KEYS) + " |\n|---|" + "---|" * len(ANSWER_KEYS))
        for backend, m in backends.items():
            lines.append(f"| {backend} | " + " | ".join(str(m["all"].get(k)) for k in ANSWER_KEYS) + " |")
        for group, metric in (("by_lang", "overall_accuracy"), ("by_added", "overall_accuracy"),
                              ("by_kind", "overall_accuracy"), ("by_kind", "answered_wrong"),
                              ("by_kind", "answer_sentences_p50")):
            lines.append(f"\n### {metric.replace('_', ' ')} {group.replace('_', ' ')}\n")
            keys = sorted({k for m in backends.values() for k in m.get(group, {})})
            lines.append("| backend | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
            for backend, m in backends.items():
                lines.append(f"| {backend} | " + " | ".join(str(m.get(group, {}).get(k, {}).get(metric)) for k in keys) + " |")
        for backend, diff in (summary.get("model_adds") or {}).items():
            lines.append(f"\n### {backend} against extractive\n")
            lines.append(f"- model adds ({len(diff['adds'])}): {', '.join(diff['adds']) or '–'}")
            lines.append(f"- model loses ({len(diff['loses'])}): {', '.join(diff['loses']) or '–'}")
        ratios = _ratio_lines(backends)
        if ratios:
            lines.append("\n## Against the baselines (ratio ours / baseline)\n")
            lines.extend(ratios)
        for png in _plots(summary, out):
            lines.append(f"\n![{png}]({png})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def compare(run_a: Path, run_b: Path) -> str:
    """What got better or worse from run A to run B, item by item, per backend folder."""

    def load(run: Path) -> dict[str, dict[str, dict]]:
        found = {}
        for path in sorted(run.rglob("results.jsonl")):
            results = {r["id"]: r for r in read_jsonl(path)}
            # One backend's run keeps its results at the top; name them by the backend that answered.
            name = path.parent.name if path.parent != run else next((r.get("backend") for r in results.values()), ".")
            found[name] = results
        return found

    a, b = load(run_a), load(run_b)
    lines = []
    for backend in sorted(set(a) & set(b)):
        better = [i for i in a[backend] if i in b[backend] and not a[backend][i]["correct"] and b[backend][i]["correct"]]
        worse = [i for i in a[backend] if i in b[backend] and a[backend][i]["correct"] and not b[backend][i]["correct"]]
        acc_a = sum(r["correct"] for r in a[backend].values()) / max(1, len(a[backend]))
        acc_b = sum(r["correct"] for r in b[backend].values()) / max(1, len(b[backend]))
        lines.append(f"{backend}: correct {acc_a:.3f} -> {acc_b:.3f}")
        lines += [f"  + {i}: {b[backend][i]['question']}" for i in better]
        lines += [f"  - {i}: {b[backend][i]['question']}  (now: {b[backend][i]['answer'][:80]!r})" for i in worse]
    if not lines:
        lines.append(f"no backend in common between {run_a} and {run_b}")
    return "\n".join(lines)
