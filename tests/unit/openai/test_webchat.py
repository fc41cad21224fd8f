"""The web chat page's routes on the chat app: ``/chat``, ``/chat/static/<file>``, ``/chat/config``, and the gateway
letting the page (only the page) load without a key. The page itself runs in Chromium in
tests/integration/test_chat_page.py."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from llmship.gateway import Gateway, GatewaySettings, KeyStore
from llmship.openai.app import WEBCHAT_ASSETS, create_app


def get(app, *paths: str, key: str | None = None) -> list[httpx.Response]:
    async def go():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     headers=headers) as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(go())


def test_the_page_and_its_assets(monkeypatch):
    monkeypatch.delenv("LLMSHIP_CHAT_RAG_URL", raising=False)
    page, js, css = get(create_app(), "/chat", "/chat/static/chat.js", "/chat/static/chat.css")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert set(re.findall(r'(?:src|href)="([^"]+)"', page.text)) == {"chat/static/chat.js", "chat/static/chat.css"}
    assert "connect-src 'self';" in page.headers["content-security-policy"]  # no RAG service: this origin only
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "http" not in page.text and "innerHTML" not in js.text  # nothing from elsewhere; no HTML sinks
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert set(WEBCHAT_ASSETS) == {"chat.js", "chat.css"}


@pytest.mark.parametrize("name", ["index.html", "__init__.py", "..%2Fapp.py", "chat.js.map", "missing.css"])
def test_only_the_known_assets_are_served(name):
    (response,) = get(create_app(), f"/chat/static/{name}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_config_reflects_the_environment(monkeypatch):
    monkeypatch.delenv("LLMSHIP_CHAT_RAG_URL", raising=False)
    monkeypatch.delenv("LLMSHIP_GATEWAY_AUTH", raising=False)
    app = create_app()
    assert get(app, "/chat/config")[0].json() == {"rag_url": None, "auth": False}
    monkeypatch.setenv("LLMSHIP_CHAT_RAG_URL", "http://127.0.0.1:3001/v1/")
    monkeypatch.setenv("LLMSHIP_GATEWAY_AUTH", "true")
    config, page = get(app, "/chat/config", "/chat")
    assert config.json() == {"rag_url": "http://127.0.0.1:3001", "auth": True}
    assert "connect-src 'self' http://127.0.0.1:3001;" in page.headers["content-security-policy"]


def test_with_auth_the_page_loads_without_a_key_but_the_api_does_not(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    _, key = store.create("browser")
    app = create_app()  # no model: the API answers 503 once past the gateway
    app.add_middleware(Gateway, settings=GatewaySettings(auth=True, audit=False), store=store)
    page, js, config, models = get(app, "/chat", "/chat/static/chat.js", "/chat/config", "/v1/models")
    assert (page.status_code, js.status_code, config.status_code) == (200, 200, 200)
    assert models.status_code == 401 and models.json()["error"]["code"] == "invalid_api_key"
    assert [r.status_code for r in get(app, "/chatty", "/v1/models", key=None)] == [401, 401]
    assert get(app, "/v1/models", key=key)[0].status_code == 503
    store.close()
