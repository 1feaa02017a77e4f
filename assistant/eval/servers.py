"""Running the app for tests and benchmarks: a free port, ``assistant serve`` in a child process,
and the page in Debian's headless Chromium (the flags this workplace requires)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Infinity (an OpenAI-compatible embeddings server) pins sentence-transformers < 4 and numpy < 2, so
# `make test` installs it into a venv of its own (Makefile target .venv-infinity).
INFINITY = Path(__file__).resolve().parents[2] / ".venv-infinity" / "bin" / "infinity_emb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


class ServerError(RuntimeError):
    """The server exited or did not answer in time; the message carries its log's tail."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    """Wait until ``url`` answers; fail early with the log if the server process exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"server exited: {log.read_text()[-2000:] if log else ''}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise ServerError(f"{url} did not answer in {timeout:.0f} s: {log.read_text()[-2000:] if log else ''}")


def start_serve(port: int, log: Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.Popen:
    """``assistant serve`` on ``port`` with ``env`` added to this process's environment, once it answers."""
    full = dict(os.environ) | {"ASSISTANT_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
                               "HF_HUB_OFFLINE": "1"} | (env or {})
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve"], env=full,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_for_http(f"http://127.0.0.1:{port}/", proc, timeout, log)
    return proc


def start_chroma(path: Path, port: int, log: Path, timeout: float = 60) -> subprocess.Popen:
    """``chroma run`` (the chromadb package's server) storing in ``path``, once it answers."""
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, timeout, log)
    return proc


def start_infinity(model_dir: Path, name: str, port: int, log: Path, timeout: float = 240) -> subprocess.Popen:
    """Infinity serving the sentence-transformers model in ``model_dir`` as ``name`` on CPU, once it
    answers ``/models`` (``/embeddings`` is then an OpenAI-compatible endpoint at the root)."""
    if not INFINITY.exists():
        raise ServerError(f"{INFINITY} is missing; `make test` installs it (make .venv-infinity)")
    env = dict(os.environ) | {"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen(
        [str(INFINITY), "v2", "--model-id", str(model_dir), "--served-model-name", name, "--host", "127.0.0.1",
         "--port", str(port), "--engine", "torch", "--device", "cpu", "--no-model-warmup", "--log-level", "warning"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    wait_for_http(f"http://127.0.0.1:{port}/models", proc, timeout, log)
    return proc


@contextmanager
def chat_page(port: int) -> Iterator[Any]:
    """The chat page at ``port`` in headless Chromium, loaded and ready for a question."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_selector("#question textarea", timeout=60_000)
            yield page
        finally:
            browser.close()
