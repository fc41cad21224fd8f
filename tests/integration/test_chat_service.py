"""The chat Bento as users meet it: a real ``bentoml serve`` process, the official ``openai`` SDK, raw HTTP.

The tiny model is registered in a real (SQLite) MLflow registry under a fresh
LLMSHIP_HOME, promoted to champion, and served by the same code path
``deploy`` uses (``llmship.serving.process.start``) from the source service.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import httpx
import openai
import pytest

from llmship.errors import ServeError
from llmship.registry import ModelRegistry
from llmship.serving import process
from llmship.serving.bento import bentoml_env
from llmship.validate.gates import GateReport
from tests.conftest import REPO, free_port

NAME = "tiny-chat"


@pytest.fixture(scope="module")
def server(tiny_built, tiny_onnx, tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-home")
    old = os.environ.get("LLMSHIP_HOME")
    os.environ["LLMSHIP_HOME"] = str(home)
    try:
        registry = ModelRegistry()
        ref = registry.register(NAME, tiny_built.folder.parent, tags={"serve_backend": "onnx"})
        registry.promote(NAME, ref.version, GateReport(results=[]))
        port = free_port()
        env = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri, "LLMSHIP_MAX_MODEL_LEN": "128"}
        info = process.start("bentos.chat.service:Chat", model_uri=f"models:/{NAME}@champion", port=port, env=env,
                             wait_s=180, cwd=REPO)
        yield info
    finally:
        process.stop()
        if old is None:
            os.environ.pop("LLMSHIP_HOME", None)
        else:
            os.environ["LLMSHIP_HOME"] = old


@pytest.fixture()
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_models_lists_the_registered_champion(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == [NAME]
    assert server.version == f"{NAME}/1"
    assert client.models.retrieve(NAME).id == NAME


def test_chat_completion_has_exact_usage_and_version_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model=NAME, messages=[{"role": "user", "content": "Name three colors."}], max_tokens=8, temperature=0)
    assert raw.headers["x-llmship-model-version"] == f"{NAME}/1"
    assert raw.headers["x-request-id"]
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert 1 <= usage.completion_tokens <= 8
    assert usage.prompt_tokens > 3


def test_streaming_matches_non_streaming_greedy_text(client):
    kwargs = dict(model=NAME, messages=[{"role": "user", "content": "Tell me about rain."}], max_tokens=12, temperature=0)
    full = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        full.choices[0].finish_reason]


def test_same_seed_same_text(client):
    kwargs = dict(model=NAME, messages=[{"role": "user", "content": "Say something."}], max_tokens=10,
                  temperature=1.0, seed=1234)
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    second = client.chat.completions.create(**kwargs).choices[0].message.content
    assert first == second


def test_async_client_parallel_requests_all_complete(server):
    async def run() -> list:
        aclient = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        calls = [aclient.chat.completions.create(model=NAME, messages=[{"role": "user", "content": f"Count to {i}"}],
                                                 max_tokens=6, temperature=0) for i in range(6)]
        return await asyncio.gather(*calls)

    results = asyncio.run(run())
    assert len(results) == 6
    assert all(r.usage.completion_tokens >= 1 for r in results)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found", "model"),
        ({"model": NAME, "messages": [{"role": "user", "content": "hi"}], "logprobs": True}, 400,
         "unsupported_parameter", "logprobs"),
        ({"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, 422,
         "invalid_value", "max_tokens"),
        ({"model": NAME, "messages": []}, 422, "invalid_value", "messages"),
        ({"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}, 400,
         "context_length_exceeded", "messages"),
    ],
)
def test_errors_use_the_openai_error_format(server, body, status, code, param):
    resp = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["param"] == param
    assert error["message"] and error["type"]


def test_malformed_json_is_a_400(server):
    resp = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json",
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"


def test_sdk_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="context length"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi " * 200}], max_tokens=8)


def test_cli_models_and_serve_status(server):
    env = {**os.environ, "LLMSHIP_HOME": os.environ.get("LLMSHIP_HOME", "")}
    out = subprocess.run([sys.executable, "-m", "llmship.cli", "models", "--url", server.url], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert NAME in out and f"{NAME}/1" in out


def test_port_owned_by_someone_else_is_a_clear_error(tiny_built):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(ServeError, match=f"port {port} .* in use"):
            process.start("bentos.chat.service:Chat", model_uri="models:/x@champion", port=port, wait_s=5, cwd=REPO)
