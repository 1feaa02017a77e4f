"""report.md (and plots) from an eval summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(summary: dict[str, Any], out: Path) -> Path:
    lines = [f"# Eval report\n\nQA file `{summary['qa']}`, split `{summary['split']}`, {summary['items']} items.\n"]
    lines.append("## Retrieval\n\n| system | recall@1 | recall@3 | recall@4 | recall@5 | MRR |\n|---|---|---|---|---|---|")
    for name, m in summary["retrieval"].items():
        lines.append(f"| {name} | {m.get('recall@1')} | {m.get('recall@3')} | {m.get('recall@4')} | {m.get('recall@5')} | {m.get('mrr')} |")
    if summary.get("backends"):
        keys = ["accuracy", "refusal_accuracy", "false_refusal_rate", "citation_precision", "citation_recall",
                "ttft_p50_s", "total_p50_s", "total_p95_s"]
        lines.append("\n## Answers\n\n| backend | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
        for backend, m in summary["backends"].items():
            lines.append(f"| {backend} | " + " | ".join(str(m["all"].get(k)) for k in keys) + " |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
