"""Requests the fuzz (tests/reliability/test_fuzz.py) found crashing the chat app, over HTTP on the tiny model.

Each used to raise out of the app (a 500 with the traceback in the server log): a lone UTF-16 surrogate in any
string (the tokenizer, the error renderer and the session header could not encode it), a seed beyond int64 (torch
refused it), a positive temperature too small for float32 (NaN probabilities). Now each is an answer: a 4xx in
the OpenAI error format, or a completion.
"""

from __future__ import annotations

import json

import httpx
import pytest

from llmship.openai import errors
from llmship.openai.app import attach_engine, create_app

MODEL = "tiny"
MSG = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def app(engine_host):
    app = create_app()
    attach_engine(app, engine_host.engine)
    app.state.host = engine_host
    return app


def post(app, path: str, raw: str) -> httpx.Response:
    """POST a JSON text as is (``json=`` could not carry a lone surrogate escape); app exceptions propagate."""
    async def go():
        transport = httpx.ASGITransport(app=app)  # raise_app_exceptions: a crash fails the test, not a 500 body
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            return await http.post(path, content=raw.encode(), headers={"content-type": "application/json"})

    return app.state.host.run(go())


def error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(("path", "raw", "param"), [
    ("/v1/chat/completions", '{"model": "\\ud800", "messages": [{"role": "user", "content": "Hi"}]}', "model"),
    ("/v1/chat/completions",
     '{"model": "tiny", "messages": [{"role": "user", "content": "x\\udfffy"}], "stream": true}', "messages.0.content"),
    ("/v1/completions", '{"model": "tiny", "prompt": ["ok", "\\ud800"], "max_tokens": 2}', "prompt.1"),
    ("/v1/completions", '{"model": "tiny", "prompt": "a", "bogus\\ud800": 1}', "bogus\\ud800"),
])
def test_lone_surrogates_are_a_400_naming_where(app, path, raw, param):
    response = post(app, path, raw)
    assert response.status_code == 400
    err = error(response)
    assert err["code"] == "invalid_unicode" and err["param"] == param and err["message"].startswith(param)


def test_seed_beyond_int64_is_a_400_and_its_edge_still_samples(app):
    over = post(app, "/v1/chat/completions", json.dumps({"model": MODEL, "messages": MSG, "seed": 2**64}))
    assert over.status_code == 400 and error(over)["param"] == "seed"
    edge = post(app, "/v1/chat/completions", json.dumps({"model": MODEL, "messages": MSG, "seed": 2**63 - 1,
                                                         "n": 2, "max_tokens": 2}))  # sample 2 uses seed + 1
    assert edge.status_code == 200 and len(edge.json()["choices"]) == 2


def test_a_denormal_temperature_generates(app):
    response = post(app, "/v1/completions", json.dumps({"model": MODEL, "prompt": "Once", "max_tokens": 3,
                                                        "temperature": 5e-324, "ignore_eos": True}))
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 3


def test_a_session_id_that_cannot_be_a_header_is_a_400(app):
    body = {"model": MODEL, "messages": MSG, "session_id": "s-\U000c4ad6"}
    response = post(app, "/v1/chat/completions", json.dumps(body))
    assert response.status_code == 400 and error(response)["param"] == "session_id"


def test_error_bodies_always_render():
    """An error quoting the request (a model name) renders even when the text is not valid Unicode."""
    response = errors.error_response("The model '\ud800' does not exist", 404, param="mo\udc00del")
    err = json.loads(response.body)["error"]
    assert err["message"] == "The model '\\ud800' does not exist" and err["param"] == "mo\\udc00del"
    assert err["type"] == "not_found_error"
