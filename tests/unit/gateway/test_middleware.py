"""The gateway in front of the real chat app (tiny model on a real vLLM engine, tests/engine_host.py), over ASGI with the ``openai`` SDK and
httpx: keys, per-key limits and their headers, request caps, the audit line, usage counting, CORS and docs."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from llmship.gateway import Gateway, GatewaySettings, KeyStore
from llmship.openai.app import ApiSettings, attach_engine, create_app
from tests.conftest import fresh_minute

MODEL = "tiny"
MSG = [{"role": "user", "content": "Tell me about bread."}]


@pytest.fixture(scope="module")
def host(engine_host, tiny_built):
    from transformers import AutoTokenizer

    engine_host.tokenizer = AutoTokenizer.from_pretrained(str(tiny_built.folder))
    return engine_host


@pytest.fixture()
def store(tmp_path):
    s = KeyStore(tmp_path / "keys.db")
    yield s
    s.close()


def gated(host, store, tmp_path, **settings):
    app = create_app(settings=ApiSettings(max_body_bytes=64 * 1024))
    attach_engine(app, host.engine)
    merged = {"auth": True, "audit_path": str(tmp_path / "audit.jsonl"), "max_body_bytes": 64 * 1024, **settings}
    app.add_middleware(Gateway, settings=GatewaySettings(**merged), store=store,
                       tokenizer=lambda text: len(host.tokenizer.encode(text)))
    return app


def http(app, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers,
                             timeout=60)


def sdk(app, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key=key, max_retries=0,
                              http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)))


def chat(max_tokens: int = 4, **extra) -> dict:
    return {"model": MODEL, "messages": MSG, "max_tokens": max_tokens, "temperature": 0, **extra}


def audit_lines(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_every_route_but_the_probes_needs_a_key(host, store, tmp_path):
    app = gated(host, store, tmp_path)
    _, key = store.create("ok")
    _, revoked = store.create("gone")
    store.revoke("gone")
    routes = sorted({(m, r.path.replace("{model_id:path}", MODEL).replace("{session_id}", "s1"))
                     for r in app.routes for m in getattr(r, "methods", []) if m != "HEAD"})
    assert len(routes) >= 10

    async def go():
        out = {}
        async with http(app) as anon, http(app, "sk-llmship-deadbeef-" + "x" * 43) as wrong, \
                http(app, revoked) as old, http(app, key) as good:
            for method, path in routes:
                body = json.dumps(chat()) if method == "POST" else None
                out[(method, path)] = [await c.request(method, path, content=body) for c in (anon, wrong, old, good)]
        return out

    for (method, path), (anon, wrong, old, good) in host.run(go()).items():
        if path in ("/livez", "/readyz"):
            assert anon.status_code == 200, path
            continue
        if path == "/chat" or path.startswith("/chat/"):  # the web chat page needs no key (it asks the user for one)
            assert anon.status_code != 401 and anon.status_code == good.status_code, path
            continue
        if path.startswith("/admin/"):  # the app's own admin token guards it (here unset: no admin routes)
            assert {r.status_code for r in (anon, wrong, old, good)} == {404}, path
            continue
        for response in (anon, wrong, old):
            error = assert_openai_error(response, 401, "invalid_api_key")
            assert response.headers["www-authenticate"] == "Bearer"
            assert "sk-llmship" not in error["message"]
        assert good.status_code != 401, (method, path)


def test_models_outside_the_key_and_patterns(host, store, tmp_path):
    app = gated(host, store, tmp_path)
    _, narrow = store.create("narrow", models=["other-model"])
    _, pattern = store.create("pattern", models=["ti*"])

    async def go():
        async with http(app, narrow) as a, http(app, pattern) as b:
            return await a.post("/v1/chat/completions", json=chat()), await b.post("/v1/chat/completions", json=chat())

    denied, allowed = host.run(go())
    error = assert_openai_error(denied, 403, "model_not_allowed")
    assert error["param"] == "model" and error["type"] == "permission_error"
    assert allowed.status_code == 200


def test_requests_per_minute_give_429_with_openai_headers(host, store, tmp_path):
    app = gated(host, store, tmp_path)
    _, key = store.create("rpm", rpm=2)
    fresh_minute()

    async def go():
        async with http(app, key) as c:
            return [await c.get("/v1/models") for _ in range(3)]

    first, second, third = host.run(go())
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert [first.headers["x-ratelimit-remaining-requests"], second.headers["x-ratelimit-remaining-requests"]] == \
        ["1", "0"]
    assert_openai_error(third, 429, "rate_limit_exceeded")
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.json()["error"]["type"] == "rate_limit_error"


def test_tokens_are_reserved_then_settled_with_the_real_usage(host, store, tmp_path):
    app = gated(host, store, tmp_path)
    _, key = store.create("tpm", tpm=500)
    fresh_minute()

    async def go():
        async with http(app, key) as c:
            too_big = await c.post("/v1/chat/completions", json=chat(max_tokens=600))
            done = await c.post("/v1/chat/completions", json=chat(max_tokens=100, ignore_eos=True, max_completion_tokens=3))
            after = await c.get("/v1/models")
            return too_big, done, after

    too_big, done, after = host.run(go())
    error = assert_openai_error(too_big, 429)
    assert "Request too large" in error["message"] and "500" in error["message"]
    used = done.json()["usage"]["total_tokens"]
    assert done.json()["usage"]["completion_tokens"] == 3
    # the reservation (prompt + 3) was settled to the real usage, so the window holds exactly that
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == 500 - used


def test_parallel_requests_per_key(host, store, tmp_path):
    app = gated(host, store, tmp_path)
    _, key = store.create("one-at-a-time", max_parallel=1)

    async def go():
        async with http(app, key) as c:
            slow = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat(max_tokens=100, ignore_eos=True)))
            for _ in range(5000):  # at most 10 s: the first request is generating (it holds the key's slot)
                if app.state.load.generating:
                    break
                await asyncio.sleep(0.002)
            rejected = await c.post("/v1/chat/completions", json=chat())
            first = await slow
            again = await c.post("/v1/chat/completions", json=chat())
            return first, rejected, again

    first, rejected, again = host.run(go())
    assert first.status_code == 200 and again.status_code == 200
    assert first.json()["usage"]["completion_tokens"] == 100
    assert_openai_error(rejected, 429, "too_many_parallel_requests")
    assert rejected.headers["retry-after"] == "1"


def test_max_tokens_cap_per_key_and_request_caps(host, store, tmp_path):
    app = gated(host, store, tmp_path, max_messages=3, max_prompt_tokens=40)
    _, key = store.create("capped", max_tokens=5)

    async def go():
        async with http(app, key) as c:
            above = await c.post("/v1/chat/completions", json=chat(max_tokens=6))
            unnamed = await c.post("/v1/chat/completions", json={"model": MODEL, "messages": MSG, "ignore_eos": True})
            many = await c.post("/v1/chat/completions", json={**chat(), "messages": MSG * 4})
            long = await c.post("/v1/completions", json={"model": MODEL, "prompt": "bread " * 200, "max_tokens": 2})
            huge = await c.post("/v1/chat/completions", content=b'{"model": "' + b"x" * 70_000 + b'"}',
                                headers={"content-type": "application/json"})
            return above, unnamed, many, long, huge

    above, unnamed, many, long, huge = host.run(go())
    assert assert_openai_error(above, 400, "max_tokens_exceeded")["param"] == "max_tokens"
    assert unnamed.status_code == 200 and unnamed.json()["usage"]["completion_tokens"] == 5
    assert assert_openai_error(many, 400, "too_many_messages")["param"] == "messages"
    assert assert_openai_error(long, 400, "prompt_too_long")["param"] == "prompt"
    assert_openai_error(huge, 413, "request_too_large")


def test_audit_line_per_request_and_usage_per_key(host, store, tmp_path):
    app = gated(host, store, tmp_path)
    record, key = store.create("audited")

    async def go():
        client = sdk(app, key)
        done = await client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4, temperature=0)
        stream = await client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=5, temperature=0,
                                                      stream=True, extra_body={"ignore_eos": True})
        chunks = [c async for c in stream]
        async with http(app) as anon:
            await anon.get("/v1/models")
        return done, chunks

    done, _chunks = host.run(go())
    lines = audit_lines(tmp_path)
    assert [(a["path"], a["status"], a["key"], a["stream"]) for a in lines] == [
        ("/v1/chat/completions", 200, "audited", False), ("/v1/chat/completions", 200, "audited", True),
        ("/v1/models", 401, None, False)]
    first, streamed, anon = lines
    assert (first["prompt_tokens"], first["completion_tokens"]) == (done.usage.prompt_tokens,
                                                                    done.usage.completion_tokens)
    assert streamed["completion_tokens"] == 5 and streamed["model"] == MODEL and streamed["latency_ms"] > 0
    assert first["key_id"] == record.id and first["request_id"]
    assert anon["error"] == "invalid_api_key"
    text = (tmp_path / "audit.jsonl").read_text()
    secret = key.split("-", 3)[3]  # sk-llmship-<id>-<secret>; the secret (token_urlsafe) may itself hold a "-"
    assert key not in text and secret not in text and "bread" not in text
    usage = store.get("audited")
    assert usage.requests == 2
    assert usage.tokens == done.usage.total_tokens + streamed["prompt_tokens"] + 5
    assert usage.last_used_at is not None


def test_prompts_in_the_audit_only_when_asked(host, store, tmp_path):
    app = gated(host, store, tmp_path, audit_prompts=True)
    _, key = store.create("verbose")

    async def go():
        async with http(app, key) as c:
            return await c.post("/v1/chat/completions", json=chat())

    assert host.run(go()).status_code == 200
    assert audit_lines(tmp_path)[0]["prompt"] == MSG


def test_docs_and_metrics_behind_config(host, store, tmp_path):
    _, key = store.create("docs")

    async def go(app, with_key=False):
        async with http(app, key if with_key else None) as c:
            return [(await c.get(p)).status_code for p in ("/openapi.json", "/docs", "/metrics")]

    assert host.run(go(gated(host, store, tmp_path))) == [401, 401, 401]
    assert host.run(go(gated(host, store, tmp_path), with_key=True)) == [200, 200, 200]
    assert host.run(go(gated(host, store, tmp_path, public_docs=True, public_metrics=True))) == [200, 200, 200]
    assert host.run(go(gated(host, store, tmp_path, docs=False), with_key=True))[:2] == [404, 404]


def test_cors_preflight_without_a_key_for_allowed_origins_only(host, store, tmp_path):
    app = gated(host, store, tmp_path, cors_origins=["https://chat.example"])
    _, key = store.create("browser")

    async def go():
        async with http(app) as c:
            ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
            ok = await c.options("/v1/chat/completions", headers={"Origin": "https://chat.example", **ask})
            bad = await c.options("/v1/chat/completions", headers={"Origin": "https://evil.example", **ask})
        async with http(app, key) as c:
            real = await c.post("/v1/chat/completions", json=chat(), headers={"Origin": "https://chat.example"})
        return ok, bad, real

    ok, bad, real = host.run(go())
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://chat.example"
    assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
    assert real.status_code == 200 and real.headers["access-control-allow-origin"] == "https://chat.example"
    assert "x-ratelimit-remaining-requests" in real.headers["access-control-expose-headers"]


def test_without_auth_requests_pass_and_are_audited(host, store, tmp_path):
    app = gated(host, store, tmp_path, auth=False, max_messages=2)

    async def go():
        async with http(app) as c:
            return await c.post("/v1/chat/completions", json=chat()), \
                await c.post("/v1/chat/completions", json={**chat(), "messages": MSG * 3})

    ok, many = host.run(go())
    assert ok.status_code == 200
    assert_openai_error(many, 400, "too_many_messages")
    assert [a["key"] for a in audit_lines(tmp_path)] == [None, None]


def test_settings_from_env_and_deploy_config():
    settings = GatewaySettings.from_env({"LLMSHIP_GATEWAY_AUTH": "true", "LLMSHIP_GATEWAY_CORS_ORIGINS": "a, b",
                                         "LLMSHIP_MAX_BODY_BYTES": "2048", "LLMSHIP_GATEWAY_MAX_PROMPT_TOKENS": ""})
    assert settings.auth and settings.cors_origins == ["a", "b"] and settings.max_body_bytes == 2048
    assert settings.max_prompt_tokens is None
    assert GatewaySettings.from_env(settings.env()) == settings
    with pytest.raises(ValueError):
        GatewaySettings(autth=True)
