"""The web chat page (``/chat``) in a real headless Chromium — Debian's ``/usr/bin/chromium`` driven by Playwright,
no browser download — against real services, as ``deploy`` starts them: the chat Bento (``bentoml serve``, the
tiny model as champion of a real MLflow registry) with ``LLMSHIP_CHAT_RAG_URL`` naming the RAG Bento, which
answers with that chat server by URL over a real embedded ArcadeDB and lists the page's origin in
``LLMSHIP_GATEWAY_CORS_ORIGINS``. Both gateways ask for keys; the test's key is typed into the page.

The page streams a chat answer (the test watches it grow), then a RAG answer whose sources show as clickable
``[n]`` markers, and a wrong key's 401 in the page. A screenshot is saved under ``tmp_path`` (and in
``$LLMSHIP_SCREENSHOT_DIR`` when set). Without ``/usr/bin/chromium`` the test fails and says how to install it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from llmship.gateway import KeyStore
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.graphstore import server as graph_server_mod
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.serving import process
from llmship.serving.bento import bentoml_env
from llmship.serving.rag import RAG_KEY, start_rag
from tests.conftest import REPO, free_port, llmship_home, register_champion
from tests.engine_host import TEST_ENGINE_ENV
from tests.unit.rag.test_rag_service import DOCS, refresh, write_docs

NAME = "tiny-webchat"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def services(tiny_built, tmp_path_factory):
    with llmship_home(tmp_path_factory.mktemp("webchat-home")) as home, contextlib.ExitStack() as cleanup:
        graph_root = home / "graph"  # where GraphSettings.from_env() finds the server in the services
        info = graph_server_mod.start(bolt_port=free_port(), http_port=free_port(), root=graph_root)
        cleanup.callback(graph_server_mod.stop, graph_root)
        docs = tmp_path_factory.mktemp("webchat-corpus") / "docs"
        write_docs(docs, DOCS)
        with GraphStore.connect(GraphSettings.for_server(info)) as graph:
            refresh(docs, graph, Embedder.load(threads=1), "v1")
        registry = register_champion(NAME, tiny_built, "vllm")
        keys = KeyStore(home / "gateway" / "keys.db")
        rag_key = keys.issue(RAG_KEY, models=[NAME])[1]
        _, user_key = keys.create("browser", models=[NAME, "rag"])
        keys.close()
        chat_port, rag_port = free_port(), free_port()
        chat_url, rag_url = f"http://127.0.0.1:{chat_port}", f"http://127.0.0.1:{rag_port}"
        gateway = {"LLMSHIP_GATEWAY_AUTH": "true"}
        cleanup.callback(process.stop)
        process.start("bentos.chat.service:Chat", model_uri=f"models:/{NAME}@champion", port=chat_port, wait_s=300,
                      cwd=REPO, env={**bentoml_env(), **gateway, **TEST_ENGINE_ENV,
                                     "MLFLOW_TRACKING_URI": registry.tracking_uri,
                                     "LLMSHIP_CHAT_RAG_URL": rag_url})
        # The tiny model knows 256 positions: one short source per answer (as in test_rag_service).
        start_rag(f"{chat_url}/v1", model_uri=f"models:/{NAME}@champion", port=rag_port, wait_s=300, env={
            **gateway, "LLMSHIP_RAG_CHAT_API_KEY": rag_key, "LLMSHIP_GATEWAY_CORS_ORIGINS": chat_url,
            "LLMSHIP_RAG_TOP_K": "2", "LLMSHIP_RAG_MAX_CONTEXT_CHARS": "100", "LLMSHIP_RAG_INSTRUCTION": "Cite like [1]."})
        yield {"chat_url": chat_url, "rag_url": rag_url, "key": user_key}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the chat page test runs in Debian's Chromium. Install it with "
                    "`scripts/install_browser.sh` (or `apt-get install -y chromium`)", pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


# Records every distinct text the streaming answer shows, as the DOM changes (installed before asking).
WATCH_ANSWER = """() => {
  if (window.__answerWatch) window.__answerWatch.disconnect();
  window.__answerStates = [];
  window.__answerWatch = new MutationObserver(() => {
    const last = [...document.querySelectorAll(".msg.assistant")].pop();
    if (!last || last.dataset.state !== "streaming") return;
    const text = last.querySelector(".body").textContent;
    if (text && window.__answerStates.at(-1) !== text) window.__answerStates.push(text);
  });
  window.__answerWatch.observe(document.getElementById("log"), {childList: true, subtree: true, characterData: true});
}"""


def open_chat(page, services) -> None:
    page.goto(f"{services['chat_url']}/chat")
    page.locator("#status").filter(has_text="API key").wait_for()  # models need a key: the page asks for it
    page.fill("#api-key", services["key"])
    page.press("#api-key", "Tab")  # "change": the page lists the models with the key
    expect(page.locator("#model option")).to_have_count(2, timeout=TIMEOUT_MS)


def ask(page, question: str, *, nth: int):
    page.fill("#prompt", question)
    page.press("#prompt", "Enter")
    answer = page.locator(".msg.assistant").nth(nth)
    expect(answer).to_have_attribute("data-state", re.compile("^(done|error|stopped)$"), timeout=TIMEOUT_MS)
    return answer


def save_screenshot(page, tmp_path: Path) -> Path:
    shot = tmp_path / "chat_page.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("LLMSHIP_SCREENSHOT_DIR"):
        target = Path(os.environ["LLMSHIP_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
    return shot


def test_chat_streams_and_rag_answers_cite_their_sources(page, services, tmp_path):
    started = time.monotonic()
    open_chat(page, services)
    assert page.locator("#model option").all_inner_texts() == [NAME, "rag"]
    assert page.input_value("#model") == NAME and not page.is_checked("#rag")
    assert page.evaluate("sessionStorage.getItem('llmship.apiKey')") == services["key"]

    # A chat answer, streamed: the answer element shows at least two growing, non-empty texts before it is done.
    for _ in range(3):  # the tiny random model may end an answer at once (EOS): then ask again
        page.evaluate(WATCH_ANSWER)
        answer = ask(page, "Tell me about the harbour.", nth=0)
        assert answer.get_attribute("data-state") == "done", answer.inner_text()
        final = answer.locator(".body").text_content()
        states = page.evaluate("window.__answerStates")
        if len(final) >= 20:
            break
        page.click("#new-chat")
    assert len(states) >= 2 and final, states
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(states)), states
    assert final.startswith(states[-1])
    assert answer.locator(".who").text_content() == NAME and not answer.locator(".sources").count()

    # RAG on: the question goes to the RAG service (cross-origin, the same key); its sources are [n] markers.
    page.click("#new-chat")
    page.check("#rag")
    assert page.input_value("#model") == "rag"
    rag_answer = ask(page, "How far can the Brackenholm Light be seen?", nth=0)
    assert rag_answer.get_attribute("data-state") == "done", rag_answer.inner_text()
    markers = rag_answer.locator(".sources button.cite")
    assert markers.count() >= 1 and markers.first.inner_text() == "[1]"
    detail = rag_answer.locator(".source-detail")
    assert detail.is_hidden()
    markers.first.click()
    detail.wait_for(state="visible")
    assert "harbour/lighthouse.md" in detail.locator(".source-facts").inner_text()
    assert "Brackenholm Light" in detail.locator(".source-title").inner_text()
    assert "nineteen miles" in detail.locator(".source-text").inner_text()
    shot = save_screenshot(page, tmp_path)
    assert shot.stat().st_size > 10_000
    markers.first.click()  # a second click hides the source again
    detail.wait_for(state="hidden")
    print(f"\nchat page scenario: {time.monotonic() - started:.1f}s, {len(states)} streamed states; screenshot {shot}")


def test_a_wrong_key_shows_the_401(page, services):
    open_chat(page, services)
    page.fill("#api-key", "sk-llmship-wrong")
    page.press("#api-key", "Tab")
    page.locator("#status").filter(has_text="401").wait_for()
    assert "Incorrect API key" in page.inner_text("#status")
    assert page.locator("#model option").count() == 2  # the picker keeps what it had
    chat = ask(page, "Hello?", nth=0)
    assert chat.get_attribute("data-state") == "error"
    assert chat.locator(".error").inner_text() == "401: Incorrect API key provided"
    page.check("#rag")  # the RAG service's 401 crosses origins too (its CORS headers are on errors as well)
    rag = ask(page, "Hello?", nth=1)
    assert rag.get_attribute("data-state") == "error"
    assert rag.locator(".error").inner_text() == "401: Incorrect API key provided"


def test_the_page_reads_any_sse_framing_and_links_inline_markers(page, services):
    """A canned stream (the chat route answered by Playwright): CRLF and LF framing, a comment line, U+2028 and
    markup inside JSON strings, an answer naming [1] and [2, 1], then an in-band error on the next request."""

    def event(**chunk) -> str:
        return f"data: {json.dumps(chunk, ensure_ascii=False)}"

    citations = [{"index": 1, "doc_id": "a/one.md", "chunk_id": "c1", "title": "One", "score": 0.9, "text": "First.",
                  "start_char": 0, "end_char": 6, "cited": True, "cited_by": "marker"},
                 {"index": 2, "doc_id": "b/two.md", "chunk_id": "c2", "title": None, "score": 0.5, "text": "Second.",
                  "cited": True, "cited_by": "marker"}]
    answer = "Line\u2028sep <b>bold</b> per [1] and [2, 1]; not [3]."
    good = "\r\n\r\n".join([event(choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
                            event(choices=[{"index": 0, "delta": {"content": answer[:20]}}])]) + "\r\n\r\n" + \
        "\n\n".join([": a comment", event(choices=[{"index": 0, "delta": {"content": answer[20:]}}]),
                     event(choices=[], citations=citations), "data: [DONE]", ""])
    failing = event(error={"message": "the model broke", "type": "server_error", "param": None, "code": None}) + "\n\n"
    bodies = [good, failing]
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body=bodies.pop(0)))

    open_chat(page, services)
    shown = ask(page, "Cite something.", nth=0)
    assert shown.get_attribute("data-state") == "done"
    body = shown.locator(".body")
    assert body.text_content() == "Line\u2028sep <b>bold</b> per [1] and [2][1]; not [3]."
    assert body.locator("b").count() == 0  # model text is text, never markup
    assert body.locator("button.cite").all_inner_texts() == ["[1]", "[2]", "[1]"]
    body.locator("button.cite").nth(1).click()
    detail = shown.locator(".source-detail")
    assert detail.locator(".source-title").inner_text() == "[2] b/two.md"
    assert detail.locator(".source-text").inner_text() == "Second."
    assert shown.locator(".sources button.cite.cited").count() == 2

    broken = ask(page, "Again?", nth=1)
    assert broken.get_attribute("data-state") == "error"
    assert broken.locator(".error").inner_text() == "the model broke"
