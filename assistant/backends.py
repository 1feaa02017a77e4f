"""The backend registry: ``"provider/model"`` strings to LangChain chat models.

``PROVIDERS`` is the one table of backends; the CLI's ``--help``, the UI's backend list and the
README table come from it, so adding a backend is one entry. Each provider's SDK is imported
inside its factory. ``extractive`` has no model: the chain answers with the best supporting
sentences itself.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from . import AssistantError, models
from .settings import Settings


class BackendError(AssistantError, RuntimeError):
    """A backend cannot be built or reached; the message names the setting to fix."""


@dataclass(frozen=True)
class Provider:
    """One backend: how to build its chat model and which of its specs work right now."""

    build: Callable[[str, Settings], BaseChatModel | None]  # (model, settings) -> chat model; None: no model
    example: str  # a spec that works, shown in --help and errors
    default_model: str | None = None  # used when the spec names none; None: the spec must name one
    available: Callable[[Settings], list[str]] = lambda settings: []  # specs usable now (UI list)


def split_backend(spec: str) -> tuple[str, str]:
    """``"openai/gpt-4o"`` -> ``("openai", "gpt-4o")``; unknown providers raise with the valid list.

    >>> split_backend("local")
    ('local', 'qwen2.5-coder-1.5b-instruct')
    >>> split_backend("nope/x")
    Traceback (most recent call last):
    ...
    assistant.backends.BackendError: unknown backend provider 'nope' (from 'nope/x'); use one of: local, extractive, openai, ollama, hf (set --backend or ASSISTANT_BACKEND)
    """
    name, _, model = spec.strip().partition("/")
    if name not in PROVIDERS:
        raise BackendError(
            f"unknown backend provider {name!r} (from {spec!r}); use one of: "
            f"{', '.join(PROVIDERS)} (set --backend or ASSISTANT_BACKEND)"
        )
    provider = PROVIDERS[name]
    model = model or provider.default_model
    if model is None:
        raise BackendError(f"backend {name} needs a model name, e.g. {provider.example}")
    return name, model


def examples() -> str:
    """One working spec per provider, for ``--help``."""
    return ", ".join(p.example for p in PROVIDERS.values())


def available(settings: Settings) -> list[str]:
    """The configured backend first, then every spec a provider can serve now; no model twice."""
    found: dict[tuple[str, str], str] = {}
    for spec in [settings.backend, *(s for p in PROVIDERS.values() for s in p.available(settings))]:
        found.setdefault(split_backend(spec), spec)
    return list(found.values())


class PromptState:
    """The evaluated system prompt of a llama.cpp model, kept on disk between runs.

    Evaluating the article prompt takes ~18 s on 2 cores; loading its state takes ~1 s. Stored
    in llama.cpp's own state-file format (never a pickle: a pickle in a cache directory is code
    that runs on load) with a SHA-256 beside it, keyed by the model file and the prompt text, so a
    changed prompt or corpus builds a new state. A corrupt, foreign or unreadable file is
    ignored, removed and rebuilt. Each key is restored at most once per process: afterwards the
    model's own cache holds the prefix.
    """

    def __init__(self, folder: Path, model_path: Path) -> None:
        self.folder = folder
        stat = model_path.stat()
        self.model_id = f"{model_path.name}\0{stat.st_size}"
        self._restored: set[str] = set()

    def key(self, system_prompt: str) -> str:
        return hashlib.sha256(f"{self.model_id}\0{system_prompt}".encode()).hexdigest()[:24]

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.folder / f"{key}.llamastate", self.folder / f"{key}.sha256"

    def restore(self, llama: Any, key: str) -> bool:
        """Load the saved state for ``key`` unless this process already has it; True when the
        prompt is in the model's cache now (restored or restored before)."""
        if key in self._restored:
            return True
        path, digest = self._paths(key)
        if not (path.exists() and digest.exists()):
            return False
        import ctypes

        import llama_cpp

        try:
            if _sha256(path) != digest.read_text().strip():
                raise ValueError("checksum mismatch")
            capacity = llama.n_ctx()
            tokens = (llama_cpp.llama_token * capacity)()
            count = ctypes.c_size_t(0)
            if not llama_cpp.llama_state_load_file(llama._ctx.ctx, str(path).encode(), tokens, capacity, ctypes.byref(count)):
                raise ValueError("llama.cpp could not read it")
        except (OSError, ValueError):  # ignored and rebuilt, never trusted
            path.unlink(missing_ok=True)
            digest.unlink(missing_ok=True)
            llama.reset()
            return False
        n = count.value
        llama.input_ids[:n] = tokens[:n]
        llama.n_tokens = n
        self._restored.add(key)
        return True

    def save(self, llama: Any, key: str) -> None:
        """Write the model's current state (the prompt just evaluated) for ``key``, atomically."""
        import llama_cpp

        path, digest = self._paths(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        n = llama.n_tokens
        tokens = (llama_cpp.llama_token * n)(*llama.input_ids[:n].tolist())
        scratch = path.with_suffix(".tmp")
        try:
            if llama_cpp.llama_state_save_file(llama._ctx.ctx, str(scratch).encode(), tokens, n):
                digest.write_text(_sha256(scratch))
                scratch.replace(path)
                self._restored.add(key)
        except OSError:  # a full or read-only cache only costs the next start its speed
            scratch.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


class LlamaCppChat(BaseChatModel):
    """A llama.cpp model as a LangChain chat model.

    One ``Llama`` keeps its KV cache between calls, so a long, fixed system prompt is evaluated
    once and reused by every later question; a lock keeps concurrent calls from mixing state.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llama: Any
    model_name: str
    max_tokens: int = 96
    temperature: float = 0.0
    state: PromptState | None = None

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def _messages(self, messages: list[BaseMessage]) -> list[dict[str, str]]:
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        return [{"role": roles.get(m.type, "user"), "content": str(m.content)} for m in messages]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with _llama_lock(id(self.llama)):
            key = self.state.key(str(messages[0].content)) if self.state and messages else None
            saved = key is not None and self.state.restore(self.llama, key)
            before = _prompt_tokens_evaluated(self.llama)
            for part in self.llama.create_chat_completion(
                self._messages(messages),
                stream=True,
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
                temperature=self.temperature,
                stop=stop,
            ):
                choice = part["choices"][0]
                if choice.get("finish_reason"):  # "length": cut off by max_tokens, mid-sentence
                    yield ChatGenerationChunk(message=AIMessageChunk(
                        content="", response_metadata={"finish_reason": choice["finish_reason"]}))
                text = choice["delta"].get("content")
                if text:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            # What this answer cost: the prompt tokens not already in the model's cache.
            new = _prompt_tokens_evaluated(self.llama) - before
            yield ChatGenerationChunk(message=AIMessageChunk(
                content="", usage_metadata={"input_tokens": new, "output_tokens": 0, "total_tokens": new}))
            if key is not None and not saved:
                self.state.save(self.llama, key)

    @contextmanager
    def sparing_a_core(self) -> Iterator[None]:
        """Decode on one thread fewer for a while, leaving a core to other work of this process.

        Loading the embedder beside the model keeps one core busy (~9 s here); with all cores the
        model's threads wait on each other: the first answer after a start took 3.9-4.3 s, with
        one thread fewer 2.3-2.6 s, and the embedder was ready no later (2 cores).
        """
        import llama_cpp

        ctx, threads, batch = self.llama._ctx.ctx, self.llama.n_threads, self.llama.n_threads_batch
        llama_cpp.llama_set_n_threads(ctx, max(1, threads - 1), max(1, batch - 1))
        try:
            yield
        finally:
            llama_cpp.llama_set_n_threads(ctx, threads, batch)

    def yes_no_margin(self, messages: list[BaseMessage], yes: str, no: str) -> float:
        """How much likelier the model's first word in reply to ``messages`` is ``yes`` than ``no``
        (a logit difference; one token is evaluated, none generated).

        A second, small context on the same loaded weights answers it, so the article cached in
        the answer context stays there. Asked with the article in front of it,
        the model says yes to nearly anything; asked about one sentence alone, its margin tells
        yes from no (`AnswerChain._judged`).
        """
        judge = _judge_for(self.llama)
        with _llama_lock(id(judge)):
            return judge.margin(self._messages(messages), yes, no)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(str(c.message.content) for c in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def sparing_a_core(model: BaseChatModel | None) -> AbstractContextManager[None]:
    """A context in which a local model leaves a core to other work; other backends run elsewhere."""
    return model.sparing_a_core() if isinstance(model, LlamaCppChat) else nullcontext()


def _prompt_tokens_evaluated(llama: Any) -> int:
    """llama.cpp's count of prompt tokens evaluated so far in this context (batched decodes)."""
    import llama_cpp

    return int(llama_cpp.llama_perf_context(llama._ctx.ctx).n_p_eval)


@cache  # never evicted: a lock dropped while held would let two decodes share a context
def _llama_lock(key: int) -> threading.Lock:
    return threading.Lock()


def _close_llamas() -> None:
    """Free llama.cpp models before interpreter teardown (avoids a noisy error at exit)."""
    _JUDGES.clear()  # each judge's context is closed with its model (llama-cpp-python registers it)
    for key in list(_LOADED):
        try:
            _LOADED.pop(key).close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


_LOADED: dict[tuple, Any] = {}
JUDGE_CONTEXT = 512  # tokens: one evidence sentence and a yes/no question


class _Judge:
    """A second llama.cpp context on a loaded model's weights, for one-token verdicts.

    Built from the model already in memory (milliseconds), through llama-cpp-python's internal
    context and batch classes (the version is pinned): a second ``Llama`` would map the file
    again (1.6 s here) and, while loading, points the process's stdout and stderr at /dev/null,
    which swallowed the chat log's lines of answers running meanwhile.
    """

    def __init__(self, llama: Any) -> None:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{Path(llama.model_path).name} has no chat template for yes/no verdicts")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = JUDGE_CONTEXT
        params.n_threads, params.n_threads_batch = llama.n_threads, llama.n_threads_batch
        self.llama = llama
        self.ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
        self.batch = _internals.LlamaBatch(n_tokens=JUDGE_CONTEXT, embd=0, n_seq_max=1, verbose=False)
        token = llama._model.token_get_text
        self.chat = Jinja2ChatFormatter(template=template, eos_token=token(llama.token_eos()),
                                        bos_token=token(llama.token_bos()) if llama.token_bos() != -1 else "")

    def margin(self, messages: list[dict[str, str]], yes: str, no: str) -> float:
        prompt = self.chat(messages=messages)
        tokens = self.llama.tokenize(prompt.prompt.encode(), add_bos=not prompt.added_special, special=True)
        if len(tokens) >= JUDGE_CONTEXT:
            raise ValueError(f"{len(tokens)} tokens do not fit the judge's context of {JUDGE_CONTEXT}")
        self.ctx.kv_cache_clear()
        self.batch.set_batch(tokens, n_past=0, logits_all=False)
        self.ctx.decode(self.batch)
        logits = self.ctx.get_logits_ith(len(tokens) - 1)
        first = [self.llama.tokenize(word.encode(), add_bos=False, special=False)[0] for word in (yes, no)]
        return float(logits[first[0]] - logits[first[1]])


_JUDGES: dict[int, _Judge] = {}


def _judge_for(llama: Any) -> _Judge:
    with _llama_lock(id(_JUDGES)):
        if id(llama) not in _JUDGES:
            _JUDGES[id(llama)] = _Judge(llama)
        return _JUDGES[id(llama)]
atexit.register(_close_llamas)


def _load_llama(path: Path, threads: int, n_ctx: int) -> Any:
    """Load a GGUF model once per process."""
    key = (str(path), threads, n_ctx)
    if key not in _LOADED:
        _LOADED[key] = _open_llama(path, threads, n_ctx)
    return _LOADED[key]


def _open_llama(path: Path, threads: int, n_ctx: int) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise BackendError("llama-cpp-python is not installed; run `pip install llama-cpp-python==0.3.36`") from None
    try:
        return Llama(str(path), n_ctx=n_ctx, n_threads=threads, n_batch=512, verbose=False)
    except Exception as exc:  # noqa: BLE001 - llama.cpp reports load failures as ValueError/RuntimeError
        raise BackendError(
            f"could not load {path.name} ({exc}); run `assistant models fetch --force`"
        ) from None


def _local_chat(model: str, settings: Settings) -> BaseChatModel:
    if model not in models.PACKAGED_MODELS or models.PACKAGED_MODELS[model].kind != "llm":
        path = Path(model)
        if not path.exists():
            llms = [m.name for m in models.PACKAGED_MODELS.values() if m.kind == "llm"]
            raise BackendError(f"local model {model!r} is neither a packaged model ({', '.join(llms)}) nor a .gguf path")
    else:
        path = models.require(model, settings.cache_dir)
    llama = _load_llama(path, settings.threads, settings.n_ctx)
    state = PromptState(settings.cache_dir / "prompt-state", path)
    return LlamaCppChat(llama=llama, model_name=model, max_tokens=settings.max_tokens, state=state)


def _local_fetched(settings: Settings) -> list[str]:
    return [
        f"local/{name}" for name, spec in models.PACKAGED_MODELS.items()
        if spec.kind == "llm" and models.status(spec, settings.cache_dir) == "ok"
    ]


def _openai_chat(model: str, settings: Settings) -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise BackendError("backend openai needs `pip install langchain-openai`") from None
    base_url = settings.openai_base_url
    key = os.environ.get("OPENAI_API_KEY") or ("not-needed" if base_url else None)
    if not key:
        raise BackendError("backend openai needs OPENAI_API_KEY, or ASSISTANT_OPENAI_BASE_URL for a local server")
    return ChatOpenAI(
        model=model, base_url=base_url, api_key=key, timeout=settings.request_timeout,
        max_retries=1, temperature=0, max_tokens=settings.max_tokens,
    )


def _ollama_chat(model: str, settings: Settings) -> BaseChatModel:
    try:
        from langchain_ollama import ChatOllama
    except ImportError:
        raise BackendError("backend ollama needs `pip install langchain-ollama`") from None
    return ChatOllama(
        model=model, base_url=settings.ollama_url, temperature=0, num_predict=settings.max_tokens,
        client_kwargs={"timeout": settings.request_timeout},
    )


def _hf_chat(model: str, settings: Settings) -> BaseChatModel:
    try:
        from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    except ImportError:
        raise BackendError("backend hf needs `pip install langchain-huggingface transformers`") from None
    try:
        pipe = HuggingFacePipeline.from_model_id(
            model_id=model, task="text-generation", device=-1,
            pipeline_kwargs={"max_new_tokens": settings.max_tokens, "do_sample": False, "return_full_text": False},
        )
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"could not load hf model {model!r} ({type(exc).__name__}: {str(exc)[:200]})") from None
    return ChatHuggingFace(llm=pipe)


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):  # noqa: S310 - loopback/configured URLs only
            return True
    except Exception:  # noqa: BLE001
        return False


def _openai_up(settings: Settings) -> list[str]:
    url = settings.openai_base_url
    return ["openai/default"] if url and _reachable(url.rstrip("/") + "/models") else []


def _ollama_up(settings: Settings) -> list[str]:
    return ["ollama/default"] if _reachable(settings.ollama_url.rstrip("/") + "/api/tags") else []


PROVIDERS: dict[str, Provider] = {
    "local": Provider(_local_chat, "local", default_model=models.DEFAULT_LLM, available=_local_fetched),
    "extractive": Provider(lambda model, settings: None, "extractive", default_model="", available=lambda settings: ["extractive"]),
    "openai": Provider(_openai_chat, "openai/gpt-4o-mini", available=_openai_up),
    "ollama": Provider(_ollama_chat, "ollama/qwen2.5:1.5b", available=_ollama_up),
    "hf": Provider(_hf_chat, "hf/Qwen/Qwen2.5-0.5B-Instruct"),
}


def make_chat_model(spec: str, settings: Settings) -> BaseChatModel | None:
    """The chat model for a backend spec; ``None`` for ``extractive``."""
    name, model = split_backend(spec)
    return PROVIDERS[name].build(model, settings)
