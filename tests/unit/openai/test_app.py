"""llmship's app around vLLM, in process: the official ``openai`` SDK over an ASGI transport, on a real vLLM
engine serving the tiny model (tests/engine_host.py). Everything but the socket is real; the same app runs under
``bentoml serve`` in tests/integration.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from llmship.openai.app import ApiSettings, attach_engine, create_app, drain

MODEL = "tiny"
MSG = [{"role": "user", "content": "Tell me about bread."}]


@pytest.fixture(scope="module")
def app(engine_host):
    app = create_app(settings=ApiSettings(max_body_bytes=64 * 1024))
    attach_engine(app, engine_host.engine)
    return app


def _sdk(app) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key="unused", max_retries=0,
                              http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=120))


def _http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=120)


def test_before_the_engine_is_attached_everything_but_the_probes_is_503():
    app = create_app()

    async def go():
        async with _http(app) as http:
            return [await http.get(p) for p in ("/livez", "/readyz", "/v1/models")] + [
                await http.post("/v1/chat/completions", json={"model": MODEL, "messages": MSG})]

    live, ready, models, chat = asyncio.run(go())
    assert live.status_code == 200
    assert ready.status_code == models.status_code == chat.status_code == 503
    assert chat.json()["error"]["code"] == "not_ready"
    assert chat.headers["retry-after"] == "1"


def test_chat_has_exact_usage_version_and_request_id_headers(app, engine_host):
    async def go():
        return await _sdk(app).chat.completions.with_raw_response.create(
            model=MODEL, messages=MSG, max_tokens=6, temperature=0)

    raw = engine_host.run(go())
    assert raw.headers["x-llmship-model-version"] == "tiny/7"
    assert raw.headers["x-request-id"]
    completion = raw.parse()
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6
    assert completion.choices[0].finish_reason == "length"


def test_streams_carry_usage_only_when_asked_and_match_the_full_text(app, engine_host):
    async def go():
        sdk = _sdk(app)
        kwargs = {"model": MODEL, "messages": MSG, "max_tokens": 8, "temperature": 0}
        full = await sdk.chat.completions.create(**kwargs)
        plain = [c async for c in await sdk.chat.completions.create(**kwargs, stream=True)]
        usage = [c async for c in await sdk.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True})]
        return full, plain, usage

    full, plain, usage = engine_host.run(go())
    # llmship asks vLLM for usage on every stream (the gateway settles with it) and drops it when unasked
    assert all(c.usage is None for c in plain)
    assert "".join(c.choices[0].delta.content or "" for c in plain if c.choices) == full.choices[0].message.content
    assert usage[-1].usage.completion_tokens == full.usage.completion_tokens
    assert usage[-1].choices == []


def test_text_completions_and_models_are_vllms(app, engine_host):
    async def go():
        sdk = _sdk(app)
        one = await sdk.completions.create(model=MODEL, prompt="Once upon", max_tokens=4, temperature=0)
        listed = await sdk.models.list()
        return one, listed

    one, listed = engine_host.run(go())
    assert one.usage.completion_tokens == 4
    assert [m.id for m in listed.data] == [MODEL]


def test_structured_output_parses_into_a_pydantic_model(app, engine_host):
    class Verdict(BaseModel):
        answer: Literal["yes", "no"]
        sure: bool

    async def go():
        return await _sdk(app).chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "Ok?"}],
                                                      response_format=Verdict, max_tokens=40, temperature=0)

    parsed = engine_host.run(go()).choices[0].message.parsed
    assert isinstance(parsed, Verdict)
    assert parsed.answer in ("yes", "no")


def test_a_named_tool_choice_returns_a_well_formed_call(app, engine_host):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
        "required": ["city"], "additionalProperties": False}}}]

    async def go():
        return await _sdk(app).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Weather?"}], tools=tools, max_tokens=40,
            tool_choice={"type": "function", "function": {"name": "get_weather"}}, temperature=0)

    call = engine_host.run(go()).choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Rome")


def test_tokenize_and_detokenize_round_trip(app, engine_host):
    async def go():
        async with _http(app) as http:
            tok = (await http.post("/tokenize", json={"model": MODEL, "prompt": "hello world"})).json()
            text = (await http.post("/detokenize", json={"model": MODEL, "tokens": tok["tokens"]})).json()
            return tok, text

    tok, text = engine_host.run(go())
    assert tok["count"] == len(tok["tokens"]) > 0
    assert "hello world" in text["prompt"]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "nope", "messages": MSG}, 404, "model"),
    ({"model": MODEL, "messages": MSG, "max_tokens": 5000}, 400, "max_tokens"),
    ({"model": MODEL, "messages": MSG, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}}}, 400, None),
    ({"model": MODEL, "messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "unknown"}}}, 400, "tool_choice"),
    ({"model": MODEL, "messages": MSG, "n": "many"}, 400, "n"),
    ({"model": MODEL, "messages": MSG, "session_id": "no spaces allowed"}, 400, "session_id"),
    ({"model": MODEL, "messages": MSG, "session_id": "s", "n": 2}, 400, "n"),
])
def test_errors_are_openai_error_objects(app, engine_host, body, status, param):
    async def go():
        async with _http(app) as http:
            return await http.post("/v1/chat/completions", json=body)

    r = engine_host.run(go())
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] in ("invalid_request_error", "not_found_error")
    assert error["param"] == param
    assert error["code"] is None or isinstance(error["code"], str)


def test_broken_json_and_unknown_routes(app, engine_host):
    async def go():
        async with _http(app) as http:
            broken = await http.post("/v1/chat/completions", content=b"{not json",
                                     headers={"content-type": "application/json"})
            missing = await http.get("/v1/nothing-here")
            return broken, missing

    broken, missing = engine_host.run(go())
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_sessions_keep_history_and_reuse_its_kv(app, engine_host):
    """The second turn carries the first (server-side), and vLLM's prefix cache serves the repeated prefix."""

    async def go():
        sdk = _sdk(app)
        first = await sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "My name is Ada."}], max_tokens=4, temperature=0,
            extra_body={"session_id": "s-1"})
        second = await sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "And my name?"}], max_tokens=4, temperature=0,
            extra_body={"session_id": "s-1"})
        async with _http(app) as http:
            info = (await http.get("/v1/sessions/s-1")).json()
            gone = await http.delete("/v1/sessions/s-1")
            again = await http.get("/v1/sessions/s-1")
        return first, second, info, gone, again

    first, second, info, gone, again = engine_host.run(go())
    assert first.headers["x-llmship-session-id"] == "s-1"
    assert first.parse().session_id == "s-1"
    assert second.usage.prompt_tokens > first.parse().usage.prompt_tokens + 4  # history and reply in the prompt
    assert second.usage.prompt_tokens_details is None or second.usage.prompt_tokens_details.cached_tokens >= 0
    assert info["messages"] == 4
    assert gone.status_code == 200
    assert again.status_code == 404 and again.json()["error"]["code"] == "session_not_found"


def test_a_failed_turn_leaves_no_trace_in_the_session(app, engine_host):
    async def go():
        async with _http(app) as http:
            bad = await http.post("/v1/chat/completions", json={
                "model": MODEL, "messages": MSG, "max_tokens": 5000, "session_id": "s-2"})
            info = await http.get("/v1/sessions/s-2")
            return bad, info

    bad, info = engine_host.run(go())
    assert bad.status_code == 400
    assert info.json()["messages"] == 0


def test_admission_503_beyond_batch_plus_waiting(engine_host):
    """vLLM queues without bound; llmship answers 503 + Retry-After beyond max_num_seqs + max_waiting."""
    app = create_app()
    attach_engine(app, engine_host.engine)
    settings = engine_host.engine.settings
    limit = settings.max_num_seqs + settings.max_waiting

    async def go():
        sdk = _sdk(app)
        calls = [sdk.chat.completions.with_raw_response.create(model=MODEL, messages=MSG, max_tokens=60,
                                                              temperature=0) for _ in range(limit + 4)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = engine_host.run(go())
    busy = [r for r in results if isinstance(r, openai.APIStatusError)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(busy) == 4 and len(ok) == limit
    assert all(e.status_code == 503 and e.response.headers["retry-after"] == "1" for e in busy)
    assert all(e.response.json()["error"]["code"] == "server_busy" for e in busy)


def test_stat_counts_the_work(app, engine_host):
    async def go():
        async with _http(app) as http:
            return (await http.get("/stat")).json()

    stat = engine_host.run(go())
    assert stat["backend"] == "vllm" and stat["version"] == "tiny/7"
    worker = stat["workers"][0]
    assert worker["requests_total"] >= 1 and worker["max_batch"] == 8 and worker["accepting"] is True


def test_drain_finishes_what_runs_and_refuses_what_comes(engine_host):
    app = create_app()
    attach_engine(app, engine_host.engine)

    async def go():
        sdk = _sdk(app)
        running = asyncio.ensure_future(sdk.chat.completions.create(model=MODEL, messages=MSG, max_tokens=40,
                                                                    temperature=0))
        for _ in range(1000):  # at most 10 s for the request to arrive
            if app.state.load.inflight:
                break
            await asyncio.sleep(0.01)
        left = asyncio.ensure_future(drain(app, timeout_s=60))
        await asyncio.sleep(0.05)
        async with _http(app) as http:
            late = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": MSG})
            ready = await http.get("/readyz")
        return await running, await left, late, ready

    finished, left, late, ready = engine_host.run(go())
    assert finished.usage.completion_tokens == 40 and left == 0
    assert late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"
    assert ready.status_code == 503
