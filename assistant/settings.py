"""One typed settings object, built in one place.

Precedence, highest first: CLI flag > environment variable (``ASSISTANT_*``) > config file
(``$ASSISTANT_CONFIG``, else ``assistant.toml`` in the data directory) > default.
Secrets (API keys) are read from the environment only and never stored here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from . import AssistantError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = PROJECT_ROOT / "corpus" / "geheime-zusammenarbeit-rote-armee-reichswehr.txt"
PROMPTS_DIR = PROJECT_ROOT / "prompts"


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant"


THRESHOLD = {"threshold": True}


class SettingsError(AssistantError, ValueError):
    """A setting has a bad value; the message names the setting."""


class Settings(BaseSettings):
    """Everything configurable, with the default that works offline on a laptop."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="forbid")

    home: Path = Field(PROJECT_ROOT / ".assistant", description="data directory (index lives here)")
    cache_dir: Path = Field(default_factory=_default_cache, description="where fetched models live")
    chroma_url: str | None = Field(None, description="Chroma server URL; unset = local directory")
    collection: str = Field("assistant", description="Chroma collection name prefix")
    embedding_model: str = Field(
        "embeddinggemma-300m", description="local (a packaged name, a path, a hub id) or openai/<model> on ASSISTANT_EMBEDDINGS_URL"
    )
    embeddings_url: str | None = Field(None, description="OpenAI-compatible server for openai/<model> embeddings, e.g. http://127.0.0.1:7997 (Infinity); its key, if any, in EMBEDDINGS_API_KEY")
    embedding_batch: int = Field(32, ge=1, le=2048, description="chunks embedded per request / forward pass at ingest")
    embedding_query_prompt: str | None = Field(None, description="prefix for questions sent to an embeddings server (default: the packaged model's own)")
    embedding_document_prompt: str | None = Field(None, description="prefix for chunks sent to an embeddings server (default: the packaged model's own)")
    corpus: list[Path] = Field(default_factory=lambda: [DEFAULT_CORPUS])
    chunk_sentences: int = Field(3, ge=1, le=20, description="sentences per chunk")
    k: int = Field(4, ge=1, le=50, description="passages given to the model")
    fetch_k: int = Field(20, ge=1, le=500, description="candidates per ranker before fusion")
    # Thresholds: each says what it was set on; all of them go into every eval's summary.json.
    min_relevance: float = Field(0.35, description="refuse when the best dense score is below this... (hand-set: dev split's off-topic questions fall below, article questions above)", json_schema_extra=THRESHOLD)
    min_lexical: float = Field(1.8, description="...and the best BM25 score is below this (hand-set with min_relevance on the same questions as 4.0 with the old index's (k1+1) factor; bm25s's Lucene BM25 omits it: 4.0 / 2.2)", json_schema_extra=THRESHOLD)
    fusion_lexical_weight: float = Field(0.7, description="weight of the BM25 ranking against the dense one in reciprocal rank fusion (retrieval recall@5 on the dev split)", json_schema_extra=THRESHOLD)
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant (Cormack et al. 2009; not tuned)", json_schema_extra=THRESHOLD)
    followup_context_weight: float = Field(0.5, description="weight of what a follow-up searched (it, the question before it and the previous answer) against the follow-up's own when its sentences are ranked (follow-ups on the dev split)", json_schema_extra=THRESHOLD)
    sentence_lexical_weight: float = Field(0.3, description="share of the question's words a sentence holds, added to its cosine when evidence is ranked (evidence choice on the dev split); while the embedder loads the share alone ranks, in full", json_schema_extra=THRESHOLD)
    second_fact_margin: float = Field(
        0.25, description="a second evidence sentence that covers more of the question may score this far below the best (dev split: 0.25 beat 0.15 by one item)", json_schema_extra=THRESHOLD
    )
    tie_margin: float = Field(0.1, description="a sentence scoring this close to the best one joins the evidence even if it adds none of the question's words (dev split, 162 items: 0.1 gained 2 local and 3 extractive answers and lost none; 0.15 lost two)", json_schema_extra=THRESHOLD)
    min_coverage_over_model: float = Field(
        0.75, description="when the model says the text does not answer, quote anyway if the evidence holds this share of the question's words (set on the dev split)", json_schema_extra=THRESHOLD
    )
    min_close_evidence: float = Field(0.55, description="evidence scoring this or more (cosine plus word share) answers a question despite a noun the text never uses: it says the same in its own words (dev split: such answerable questions 0.58-0.72, look-alikes 0.45-0.57 but one)", json_schema_extra=THRESHOLD)
    min_nearby: float = Field(0.45, description="a refusal shows the nearest sentences when they score at least this (set by reading dev refusals)", json_schema_extra=THRESHOLD)
    support_min_lexical: float = Field(0.6, description="share of a claim's content words its sources must hold to support it (hand-made claim/source pairs, tests/test_citations.py)", json_schema_extra=THRESHOLD)
    same_meaning_similarity: float = Field(0.8, description="a word of the model's answer this close in meaning to one of the question's is the question's own (derivations and translations such as a country and its adjective, Unternehmen/Firmen scored 0.84-0.93 on hand-made pairs, a name and its kind such as a town's name and Stadt 0.45-0.65; dev split: 0.7-0.8 the same answers)", json_schema_extra=THRESHOLD)
    bridge_min_similarity: float = Field(0.6, description="a question word the corpus never uses is searched as the corpus word nearest in meaning at this cosine or more (dev split: the same answers from 0.45 to 0.6; translations such as a country's English and German name, offers/Angebote score 0.7-0.97, unrelated nearest words 0.5-0.6)", json_schema_extra=THRESHOLD)
    support_min_similarity: float = Field(0.64, description="claim-to-sentence cosine that supports a claim across languages (translations scored 0.65-0.77 against their German sources on dev, a wrong place or name 0.54-0.59 on hand-made pairs)", json_schema_extra=THRESHOLD)
    support_min_clause_similarity: float = Field(0.82, description="claim-to-clause cosine that supports a claim across languages, for a source sentence of several clauses (hand-made pairs: right claims 0.72-0.87 against their clause, wrong ones up to 0.81; dev split: 0.78-0.86 the same answers)", json_schema_extra=THRESHOLD)
    verdict_no_margin: float = Field(-0.4, description="a yes/no question is answered no when the local model, shown only the best evidence sentence, prefers no over yes by this logit margin or more (dev split, 21 yes/no questions: the 4 yes ones scored +2.2 to +3.8, 13 of the 17 no ones -0.5 to -2.0)", json_schema_extra=THRESHOLD)
    verdict_yes_margin: float = Field(2.0, description="a yes/no question is answered yes when the local model, shown only the best evidence sentence, prefers yes by this logit margin or more, when the model's answer said yes or asserted a verified claim (dev split: one no question scored +2.4, its draft asserted nothing verified)", json_schema_extra=THRESHOLD)
    near_copy_share: float = Field(0.7, description="a model sentence with this share of its one source's words is shown as that quote instead (read on dev answers)", json_schema_extra=THRESHOLD)
    n_ctx: int = Field(4096, ge=512, description="context window of the local model (llama.cpp)", json_schema_extra=THRESHOLD)
    context_reserve: int = Field(1500, ge=0, description="tokens of n_ctx kept for question, history and answer when every passage goes into the system prompt", json_schema_extra=THRESHOLD)
    chars_per_token: float = Field(3.2, gt=0, description="characters per token of German text (measured with the Qwen2.5 tokenizer on the article)", json_schema_extra=THRESHOLD)
    backend: str = Field("local", description="provider/model, e.g. local, extractive, openai/gpt-4o-mini")
    fallback: str | None = Field("extractive", description="backend used when the chosen one fails")
    openai_base_url: str | None = None
    ollama_url: str = "http://127.0.0.1:11434"
    request_timeout: float = Field(60.0, gt=0, description="seconds before a remote backend gives up")
    threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))
    max_question_chars: int = Field(2000, ge=10)
    max_tokens: int = Field(96, ge=8, description="longest answer the model may write, in tokens (a 1-2 sentence answer is ~30; dev accuracy was the same at 96 and 160, and a model stuck repeating itself stops 2 s sooner)")
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    auth: str | None = Field(None, description="user:password for the web UI")
    concurrency: int = Field(2, ge=1, description="answers generated at the same time")

    @model_validator(mode="after")
    def _check_clause_similarity(self) -> Settings:
        if self.support_min_clause_similarity < self.support_min_similarity:
            raise ValueError("support_min_clause_similarity must be at least support_min_similarity "
                             "(a clause is part of a sentence: it may not support more than the sentence)")
        return self

    @field_validator("chroma_url", "embeddings_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    def thresholds(self) -> dict[str, Any]:
        """Every tuned number, by name (for ``summary.json``).

        >>> Settings().thresholds()["n_ctx"]
        4096
        """
        return {
            name: getattr(self, name) for name, field in type(self).model_fields.items()
            if (field.json_schema_extra or {}).get("threshold")
        }


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``$ASSISTANT_CONFIG`` or ``<home>/assistant.toml`` when present."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        explicit = os.environ.get("ASSISTANT_CONFIG")
        home = Path(os.environ.get("ASSISTANT_HOME") or PROJECT_ROOT / ".assistant")
        path = Path(explicit) if explicit else home / "assistant.toml"
        if not path.exists():
            if explicit:
                raise SettingsError(f"ASSISTANT_CONFIG={explicit}: no such file")
            return {}
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(**overrides: Any) -> Settings:
    """Build settings; ``overrides`` are CLI flags (``None`` means "not given")."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(
            f"bad setting ({problems}); fix the flag, the ASSISTANT_* variable or the config file"
        ) from None
