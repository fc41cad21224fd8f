"""Probes through the gateway under BentoML's own timeout middleware, as a Bento serves them: a probe that fails
below the gateway is answered (503, OpenAI format), not left to BentoML's request timeout."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from llmship.gateway import Gateway, GatewaySettings, KeyStore


async def below(scope, receive, send):
    """What BentoML's /readyz does while a dependency starts: its client raises on a refused connection."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/readyz":
        raise httpx.ConnectError("[Errno 111] Connection refused")
    if scope["path"] == "/livez":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        raise RuntimeError("failed after the response started")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture()
def served(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    settings = GatewaySettings(auth=True, audit_path=str(tmp_path / "audit.jsonl"))
    yield TimeoutMiddleware(Gateway(below, settings=settings, store=store), timeout=600)  # the RAG Bento's timeout
    store.close()


def get(app, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rag") as client:
            return await asyncio.wait_for(client.get(path), 10)  # a hang fails here, not after 600 s

    return asyncio.run(go())


def test_a_readiness_probe_that_raises_below_is_a_503_at_once(served):
    r = get(served, "/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    error = r.json()["error"]
    assert error["code"] == "not_ready" and "Connection refused" in error["message"]
    assert error["type"] == "server_error"


def test_a_probe_that_fails_after_its_response_started_is_not_answered_twice(served):
    r = get(served, "/livez")
    assert r.status_code == 200  # the start that went out stands; the failure goes to the server's log


def test_other_paths_still_need_a_key(served):
    assert get(served, "/v1/models").status_code == 401
