"""The HTTP surface in process: the official ``openai`` SDK over an ASGI transport, on the tiny model.

Everything but the socket is real (scheduler, engine, tokenizer); the same
routes run under ``bentoml serve`` in tests/integration.
"""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from llmship.engine import load_engine
from llmship.openai.app import ApiSettings, create_app
from llmship.openai.runtime import Runtime, ServedModel

MODEL = "tiny"
MSG = [{"role": "user", "content": "Tell me about bread."}]


def _runtime(engine, **kw) -> Runtime:
    return Runtime(ServedModel(engine=engine, model_id=MODEL, version=f"{MODEL}/7", backend=engine.name), **kw)


@pytest.fixture(scope="module")
def engine(tiny_built):
    return load_engine(tiny_built.folder, "pytorch", dtype="float32", max_model_len=128)


@pytest.fixture(scope="module")
def app(engine):
    runtime = _runtime(engine, max_batch=8)
    yield create_app(runtime, settings=ApiSettings(max_body_bytes=64 * 1024))
    runtime.close()


def _sdk(app) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key="unused", max_retries=0,
                              http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)))


def _http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60)


def run(coro):
    return asyncio.run(coro)


def test_text_completions_take_text_token_and_batched_prompts(app, engine):
    async def go():
        sdk = _sdk(app)
        one = await sdk.completions.create(model=MODEL, prompt="Once upon", max_tokens=5, temperature=0)
        ids = engine.encode("Once upon")
        by_ids = await sdk.completions.create(model=MODEL, prompt=ids, max_tokens=5, temperature=0)
        batch = await sdk.completions.create(model=MODEL, prompt=["Once upon", "Rain"], n=2, max_tokens=3,
                                             temperature=0)
        return one, by_ids, batch

    one, by_ids, batch = run(go())
    assert one.object == "text_completion" and one.choices[0].text == by_ids.choices[0].text
    assert one.usage.prompt_tokens == len(engine.encode("Once upon")) and one.usage.completion_tokens == 5
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]
    assert batch.choices[0].text == batch.choices[1].text  # greedy: n samples of one prompt agree
    assert batch.usage.completion_tokens == 4 * 3
    assert batch.usage.prompt_tokens == len(engine.encode("Once upon")) + len(engine.encode("Rain"))


def test_n_choices_with_a_seed_differ_yet_reproduce(app):
    async def go():
        kw = {"model": MODEL, "messages": MSG, "n": 3, "max_tokens": 8, "temperature": 1.0, "seed": 5}
        return await _sdk(app).chat.completions.create(**kw), await _sdk(app).chat.completions.create(**kw)

    first, second = run(go())
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in second.choices]
    assert len(set(texts)) > 1
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_chat_logprobs_have_the_openai_shape(app):
    out = run(_sdk(app).chat.completions.create(model=MODEL, messages=MSG, max_tokens=6, temperature=0,
                                                 logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True}))
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens == 6
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.bytes and (entry.bytes == list(entry.token.encode()) or entry.token == "\ufffd")
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy picks the top token


def test_completion_logprobs_and_streamed_text_agree(app):
    async def go():
        sdk = _sdk(app)
        full = await sdk.completions.create(model=MODEL, prompt="Rain", max_tokens=6, temperature=0, logprobs=2,
                                            extra_body={"ignore_eos": True})
        stream = await sdk.completions.create(model=MODEL, prompt="Rain", max_tokens=6, temperature=0, stream=True,
                                              stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        chunks = [c async for c in stream]
        return full, chunks

    full, chunks = run(go())
    lp = full.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 6
    assert all(len(top) <= 2 for top in lp.top_logprobs)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full.choices[0].text
    assert chunks[-1].usage.completion_tokens == 6


def test_a_strong_presence_penalty_stops_repetition(app):
    out = run(_sdk(app).chat.completions.create(model=MODEL, messages=MSG, max_tokens=24, temperature=0,
                                                 presence_penalty=2.0, extra_body={"ignore_eos": True}))
    plain = run(_sdk(app).chat.completions.create(model=MODEL, messages=MSG, max_tokens=24, temperature=0,
                                                   logprobs=True, extra_body={"ignore_eos": True}))
    penalised = run(_sdk(app).chat.completions.create(model=MODEL, messages=MSG, max_tokens=24, temperature=0,
                                                       presence_penalty=2.0, logprobs=True,
                                                       extra_body={"ignore_eos": True}))
    tokens = [tuple(e.bytes) for e in penalised.choices[0].logprobs.content]  # bytes tell byte tokens apart
    assert len(set(tokens)) == len(tokens)
    assert penalised.choices[0].message.content == out.choices[0].message.content
    assert [tuple(e.bytes) for e in plain.choices[0].logprobs.content] != tokens


def test_sessions_keep_the_conversation_server_side(app):
    async def go():
        sdk, http = _sdk(app), _http(app)
        first = await sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=MSG, max_tokens=4, temperature=0, extra_body={"session_id": "s-1"})
        second = await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "More."}],
                                                   max_tokens=4, temperature=0, extra_body={"session_id": "s-1"})
        alone = await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "More."}],
                                                  max_tokens=4, temperature=0)
        info = (await http.get("/v1/sessions/s-1")).json()
        deleted = await http.delete("/v1/sessions/s-1")
        again = await http.delete("/v1/sessions/s-1")
        return first, second, alone, info, deleted, again

    first, second, alone, info, deleted, again = run(go())
    assert first.headers["x-llmship-session-id"] == "s-1"
    assert second.usage.prompt_tokens > first.parse().usage.prompt_tokens + alone.usage.prompt_tokens - 5
    assert info["messages"] == 4  # two user turns and two replies
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert again.status_code == 404 and again.json()["error"]["code"] == "session_not_found"


def test_a_full_queue_answers_503_with_retry_after(engine):
    runtime = _runtime(engine, max_batch=1, max_waiting=1)  # one running, one queued, the rest refused
    app = create_app(runtime)

    async def go():
        http = _http(app)
        body = {"model": MODEL, "messages": MSG, "max_tokens": 60, "ignore_eos": True, "temperature": 0}
        return await asyncio.gather(*[http.post("/v1/chat/completions", json=body) for _ in range(6)])

    try:
        responses = run(go())
    finally:
        runtime.close()
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 503 in codes and set(codes) == {200, 503}
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.headers["retry-after"] and refused.json()["error"]["code"] == "engine_unavailable"
    for served in (r for r in responses if r.status_code == 200):
        assert served.json()["usage"]["completion_tokens"] == 60


def test_limits_and_unsupported_parameters_are_openai_errors(app):
    async def go():
        http = _http(app)
        big = await http.post("/v1/chat/completions", content=b"x" * (65 * 1024),
                              headers={"content-type": "application/json"})
        tools = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": MSG,
                                                              "tools": [{"type": "function"}]})
        suffix = await http.post("/v1/completions", json={"model": MODEL, "prompt": "a", "suffix": "b"})
        bad_ids = await http.post("/v1/completions", json={"model": MODEL, "prompt": [10**9]})
        nulls = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": MSG, "max_tokens": 2,
                                                              "tools": None, "logit_bias": None})
        return big, tools, suffix, bad_ids, nulls

    big, tools, suffix, bad_ids, nulls = run(go())
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert tools.status_code == 400 and tools.json()["error"]["param"] == "tools"
    assert suffix.status_code == 400 and suffix.json()["error"]["param"] == "suffix"
    assert bad_ids.status_code == 400 and bad_ids.json()["error"]["param"] == "prompt"
    assert nulls.status_code == 200


def test_usage_can_be_forced_into_every_stream(engine):
    runtime = _runtime(engine)
    app = create_app(runtime, settings=ApiSettings(always_include_usage=True))

    async def go():
        stream = await _sdk(app).chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, stream=True)
        return [c async for c in stream]

    try:
        chunks = run(go())
    finally:
        runtime.close()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 3


def test_metrics_use_vllm_names(app):
    run(_sdk(app).chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, temperature=0,
                                          extra_body={"ignore_eos": True}))
    text = run(_http(app).get("/metrics")).text
    for name in ("llmship:time_to_first_token_seconds_count", "llmship:inter_token_latency_seconds_count",
                 "llmship:e2e_request_latency_seconds_count", "llmship:num_requests_running",
                 "llmship:num_requests_waiting", "llmship:prompt_tokens_total", "llmship:generation_tokens_total",
                 'llmship:request_success_total{finished_reason="length",model_name="tiny"}'):
        assert name in text, name
    stat = run(_http(app).get("/stat")).json()
    assert stat["version"] == f"{MODEL}/7" and stat["workers"][0]["requests_total"] >= 1
