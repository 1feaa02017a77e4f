"""The real page in real headless Chromium: ask, read the streamed answer, open a footnote, follow up."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port
from playwright.sync_api import expect

from assistant.eval.servers import CHROMIUM, chat_page, start_serve

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make test installs it)")


def start_server(home: Path, backend: str, port: int, log: Path) -> subprocess.Popen:
    # os.environ is already isolated (conftest.isolate): the server sees no developer settings either.
    return start_serve(port, log, {"ASSISTANT_HOME": str(home), "ASSISTANT_BACKEND": backend}, timeout=120)


def ask(page, question: str, count: int, timeout_ms: int):
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    bot = page.locator("#chat .bot, #chat [data-testid='bot']")
    page.wait_for_function(SETTLED, arg=count, timeout=timeout_ms)
    return bot


# The n-th question is in the chat and the answer under it is cited and settled: not a draft,
# not evidence waiting for its answer, not waiting for the start-up.
SETTLED = """n => {
  const rows = [...document.querySelectorAll('#chat .message-row')];
  let last = -1, users = 0;
  rows.forEach((row, i) => { if (row.classList.contains('user-row')) { last = i; users += 1; } });
  const bot = users >= n ? rows.slice(last + 1).find(row => row.classList.contains('bot-row')) : null;
  const t = bot ? bot.innerText : '';
  return !!bot && !!bot.querySelector('sup') && !t.includes('▌') && !t.includes('wird formuliert') && !t.startsWith('Das Modell lädt noch'); }"""


def run_conversation(home: Path, backend: str, tmp_path: Path, answer_timeout_ms: int) -> Path:
    port = free_port()
    proc = start_server(home, backend, port, tmp_path / "server.log")
    try:
        with chat_page(port) as page:
            ask(page, "Wo wurden die deutschen Piloten ausgebildet?", 1, answer_timeout_ms)
            chat = page.locator("#chat")
            assert "Lipezk" in chat.inner_text()
            # the collapsible footnote message: open it, see passage and Einzelnachweis
            page.get_by_text("Quellen").first.click()
            page.wait_for_function("() => document.querySelector('#chat').innerText.includes('Ian Johnson')", timeout=10_000)
            assert "Für den Aufbau der Luftwaffe" in chat.inner_text()
            # choosing the footnote marks the sentence in the article panel
            page.locator("#chat sup").last.click()  # clicking the marker opens its footnote
            page.wait_for_selector("#article-panel mark#hl", timeout=10_000)
            assert "Lipezk" in page.locator("#article-panel mark#hl").inner_text()
            assert "Ian Johnson" in page.locator("#passage").inner_text()
            # a follow-up uses the history
            ask(page, "Und wie viele wurden dort ausgebildet?", 2, answer_timeout_ms)
            assert "hundert" in chat.inner_text().split("Und wie viele wurden dort ausgebildet?")[-1]
            # the Stopp button is active only while an answer runs (its update may follow the answer's)
            expect(page.locator("#stop")).to_be_disabled(timeout=10_000)
            if backend != "extractive":  # a model's answer takes long enough to be stopped while written
                box = page.locator("#question textarea")
                box.fill("Warum hatten Stresemann und Schubert Bedenken?")
                box.press("Enter")
                page.wait_for_function("() => document.querySelector('#chat').innerText.includes('wird formuliert')",
                                       timeout=answer_timeout_ms)
                page.locator("#stop").click()
                # the stopped answer keeps its sources and says it was stopped; its draft is gone for good
                page.wait_for_function("() => document.querySelector('#chat').innerText.includes('Gestoppt')", timeout=10_000)
                page.wait_for_timeout(1000)
                stopped = chat.inner_text().split("Warum hatten Stresemann und Schubert Bedenken?")[-1]
                assert "Locarno" in stopped and "▌" not in stopped and "wird formuliert" not in stopped
            # two questions typed one second apart: both stay in the chat and both are answered, in order
            box = page.locator("#question textarea")
            box.fill("Welche Zeitung enthüllte 1926 die Zusammenarbeit?")
            box.press("Enter")
            page.wait_for_timeout(1000)
            box.fill("Wer war der Staatssekretär von Gustav Stresemann?")
            box.press("Enter")
            page.wait_for_function(
                """() => { const t = document.querySelector('#chat').innerText;
                  const last = t.split('Wer war der Staatssekretär von Gustav Stresemann?');
                  return last.length > 1 && last[last.length - 1].includes('Schubert') && !t.includes('▌')
                    && !t.includes('wird formuliert'); }""", timeout=2 * answer_timeout_ms)
            text = chat.inner_text()
            assert text.index("Welche Zeitung enthüllte") < text.index("Guardian") < text.index("Wer war der Staatssekretär")
            # the article panel lists the Einzelnachweise, without the page's edit links
            assert page.locator("#article-panel ol.references li").count() == 9
            assert "Bearbeiten" not in page.locator("#article-panel").inner_text()
            # the heading and the example questions come from the indexed document
            assert "Geheime Zusammenarbeit" in page.locator("#heading").inner_text()
            page.locator("#examples").get_by_text("Wie viele Panzer wurden in Kama insgesamt gebaut?").click()
            expect(box).to_have_value("Wie viele Panzer wurden in Kama insgesamt gebaut?", timeout=10_000)
            shot = tmp_path / f"chat-{backend.replace('/', '_')}.png"
            page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("SCREENSHOT_TO"):  # `make screenshot` keeps it for the README
            shutil.copy(shot, os.environ["SCREENSHOT_TO"])
        return shot
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_browser_conversation_extractive(real_index, tmp_path):
    settings, _ = real_index
    shot = run_conversation(settings.home, "extractive", tmp_path, 60_000)
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_browser_conversation_local_model(real_index, tmp_path):
    settings, _ = real_index
    shot = run_conversation(settings.home, "local", tmp_path, 240_000)
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_server_exposes_no_files(real_index, tmp_path):
    settings, _ = real_index
    port = free_port()
    proc = start_server(settings.home, "extractive", port, tmp_path / "server.log")
    repo_readme = Path(__file__).resolve().parent.parent / "README.md"
    try:
        for path in ["/etc/passwd", str(repo_readme), str(settings.home / "chroma" / "chroma.sqlite3"), "README.md", "../../etc/passwd"]:
            for prefix in ("/file=", "/gradio_api/file=", "/gradio_api/file/"):
                url = f"http://127.0.0.1:{port}{prefix}{path}"
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        body = response.read()
                    assert b"root:" not in body and b"Artikel-Assistent" not in body and b"SQLite" not in body, url
                    assert response.status != 200 or b"<html" in body[:200].lower(), url
                except urllib.error.HTTPError as exc:
                    assert exc.code in (403, 404, 405), url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
