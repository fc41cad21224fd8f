"""The chat Bento as users meet it (vLLM inside BentoML): a real ``bentoml serve`` process, the official ``openai`` SDK,
LangChain's ``ChatOpenAI``, the ``llmship`` CLI and raw HTTP.

The tiny model is registered in a real (SQLite) MLflow registry under a fresh
LLMSHIP_HOME, promoted to champion, and served by the same code path
``deploy`` uses (``llmship.serving.process.start``) from the source service,
with the embedding service composed in. The last test stops the server while
a stream is running: it must finish the stream first (graceful drain).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from llmship.errors import ServeError
from llmship.serving import process
from llmship.serving.bento import bentoml_env
from tests.conftest import REPO, free_port, llmship_home, register_champion
from tests.engine_host import TEST_ENGINE_ENV
from tests.helpers.sse import iter_sse_lines

NAME = "tiny-chat"


@pytest.fixture(scope="module")
def server(tiny_built, tiny_onnx, tmp_path_factory):
    with llmship_home(tmp_path_factory.mktemp("serve-home")):
        registry = register_champion(NAME, tiny_built, "vllm")
        port = free_port()
        env = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri, **TEST_ENGINE_ENV,
               "LLMSHIP_MAX_BODY_BYTES": str(256 * 1024)}
        try:
            yield process.start("bentos.chat.service:Chat", model_uri=f"models:/{NAME}@champion", port=port,
                                env=env, wait_s=180, cwd=REPO)
        finally:
            process.stop()


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
    kwargs = {"model": NAME, "messages": [{"role": "user", "content": "Tell me about rain."}], "max_tokens": 12,
              "temperature": 0}
    full = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        full.choices[0].finish_reason]


def test_same_seed_same_text(client):
    kwargs = {"model": NAME, "messages": [{"role": "user", "content": "Say something."}], "max_tokens": 10,
              "temperature": 1.0, "seed": 1234}
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
        ({"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, 400, None,
         "max_tokens"),
        ({"model": NAME, "messages": []}, 400, None, None),
        ({"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}, 400, None,
         "max_tokens"),
        ({"model": NAME, "messages": [{"role": "user", "content": "hi"}], "top_k": 2**64}, 400, "invalid_value",
         "top_k"),
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


def test_structured_outputs_that_is_not_an_object_is_a_400(server):
    """vLLM 0.32's request validator calls ``.get`` on ``structured_outputs`` and answered 500 (the fuzz found it)."""
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "structured_outputs": 3}
    resp = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "structured_outputs" and error["code"] == "invalid_type"


def test_sdk_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="context length|max_model_len"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi " * 400}], max_tokens=8)


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


def test_an_idle_connection_outlives_the_clients_keep_alive(server):
    """The server keeps an idle connection longer than a client's 5 s: the client's reuse never meets its close."""
    limits = httpx.Limits(keepalive_expiry=60.0)
    with httpx.Client(base_url=server.url, timeout=10, limits=limits) as http:
        first = http.get("/v1/models")
        port = first.extensions["network_stream"].get_extra_info("client_addr")[1]
        time.sleep(6.5)  # past uvicorn's default 5 s
        second = http.get("/v1/models")
        assert first.status_code == second.status_code == 200
        assert second.extensions["network_stream"].get_extra_info("client_addr")[1] == port, "connection was closed"


def _stream(client, **kw):
    return client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Go on."}],
                                          stream=True, stream_options={"include_usage": True}, **kw)


def test_text_completions_route(client):
    out = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=5, temperature=0,
                                    extra_body={"ignore_eos": True})
    assert out.object == "text_completion" and out.usage.completion_tokens == 5
    streamed = client.completions.create(model=NAME, prompt="Once upon a time", max_tokens=5, temperature=0,
                                         stream=True, extra_body={"ignore_eos": True})
    assert "".join(c.choices[0].text for c in streamed if c.choices) == out.choices[0].text


def test_sixteen_parallel_streams_all_complete_with_exact_usage(server):
    async def one(aclient, i):
        stream = await aclient.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": f"Story number {i}"}], max_tokens=12 + i,
            temperature=0, stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        text, usage, reasons = [], None, []
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                if choice.finish_reason:
                    reasons.append(choice.finish_reason)
        return "".join(text), usage, reasons

    async def run():
        aclient = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        return await asyncio.gather(*[one(aclient, i) for i in range(16)])

    results = asyncio.run(run())
    for i, (_, usage, reasons) in enumerate(results):
        assert reasons == ["length"]
        assert usage.completion_tokens == 12 + i
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    stat = httpx.get(f"{server.url}/stat", timeout=10).json()["workers"][0]
    assert stat["requests_total"] >= 16 and stat["max_batch"] == 8 and stat["generated_tokens_total"] >= 16 * 12


def _series(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_a_client_that_disconnects_frees_its_slot(server):
    """The disconnect reaches vLLM through llmship's layers: the request is aborted, not decoded for nobody."""
    def in_flight():
        return httpx.get(f"{server.url}/stat", timeout=10).json()["workers"][0]["in_flight"]

    before = _series(server, "vllm:generation_tokens_total")
    asked = 8 * 230
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=60,
                      json={"model": NAME, "messages": [{"role": "user", "content": "Talk."}], "max_tokens": 230,
                            "n": 8, "stream": True, "ignore_eos": True}) as resp:
        lines = iter_sse_lines(resp)
        assert [next(lines) for _ in range(3)]  # generation is under way
    for _ in range(100):  # at most ~10 s for the engine to let go of it
        if not in_flight() and not _series(server, "vllm:num_requests_running"):
            break
        time.sleep(0.1)
    assert in_flight() == 0 and _series(server, "vllm:num_requests_running") == 0
    generated = _series(server, "vllm:generation_tokens_total") - before
    assert 0 < generated < asked  # stopped early: vLLM aborted the sequences when the client left


def test_logprobs_n_and_seed_through_the_sdk(client):
    out = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                         temperature=0.9, seed=11, n=2, logprobs=True, top_logprobs=2,
                                         extra_body={"ignore_eos": True})
    assert [c.index for c in out.choices] == [0, 1]
    assert out.usage.completion_tokens == 8
    for choice in out.choices:
        assert len(choice.logprobs.content) == 4 and all(len(e.top_logprobs) == 2 for e in choice.logprobs.content)


def test_server_side_session(client, server):
    first = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "My name is Ada."}],
                                           max_tokens=4, extra_body={"session_id": "ada"})
    second = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Who am I?"}],
                                            max_tokens=4, extra_body={"session_id": "ada"})
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens
    assert httpx.get(f"{server.url}/v1/sessions/ada", timeout=10).json()["messages"] == 4
    assert httpx.delete(f"{server.url}/v1/sessions/ada", timeout=10).status_code == 200
    missing = httpx.delete(f"{server.url}/v1/sessions/ada", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "session_not_found"


def test_embeddings_from_the_composed_service(client):
    import numpy as np

    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a red apple", "a green pear", "tax law"])
    vectors = np.array([d.embedding for d in out.data])
    assert vectors.shape == (3, 384) and out.usage.prompt_tokens > 3
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    raw = httpx.post(f"{client.base_url}embeddings", timeout=30,
                     json={"model": "all-MiniLM-L6-v2", "input": "a red apple", "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vectors[0], atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="at most 256 tokens") as err:
        client.embeddings.create(model="all-MiniLM-L6-v2", input="word " * 400)
    assert err.value.code == "context_length_exceeded" and err.value.param == "input"


def test_structured_output_and_tools_on_the_served_model(client):
    from typing import Literal

    from pydantic import BaseModel

    class Verdict(BaseModel):
        answer: Literal["yes", "no"]

    parsed = client.chat.completions.parse(model=NAME, messages=[{"role": "user", "content": "Ok?"}],
                                           response_format=Verdict, max_tokens=30, temperature=0)
    assert parsed.choices[0].message.parsed.answer in ("yes", "no")
    tools = [{"type": "function", "function": {"name": "pick", "parameters": {
        "type": "object", "properties": {"color": {"type": "string", "enum": ["red", "blue"]}},
        "required": ["color"], "additionalProperties": False}}}]
    out = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Pick."}], tools=tools,
                                         tool_choice={"type": "function", "function": {"name": "pick"}},
                                         max_tokens=30, temperature=0)
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "pick" and call.function.arguments.startswith("{")


def test_tokenize_route(server):
    out = httpx.post(f"{server.url}/tokenize", json={"model": NAME, "prompt": "hello"}, timeout=30).json()
    assert out["count"] == len(out["tokens"]) > 0


def test_langchain_chat_openai(server):
    from typing import Literal

    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    llm = ChatOpenAI(base_url=f"{server.url}/v1", api_key="unused", model=NAME, max_tokens=6, temperature=0,
                     max_retries=0)

    class Mood(BaseModel):
        mood: Literal["good", "bad"]

    structured = ChatOpenAI(base_url=f"{server.url}/v1", api_key="unused", model=NAME, max_tokens=30,
                            temperature=0, max_retries=0).with_structured_output(Mood, method="json_schema")
    assert structured.invoke("How are you?").mood in ("good", "bad")
    reply = llm.invoke("Say hello.")
    assert isinstance(reply.content, str)
    assert reply.usage_metadata["output_tokens"] >= 1
    streamed = list(llm.stream("Say hello."))
    assert "".join(c.content for c in streamed) == reply.content


def test_body_too_large_is_413(server):
    resp = httpx.post(f"{server.url}/v1/chat/completions", content=b"x" * (300 * 1024),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_metrics_are_vllms_own_series(server, client):
    """Through BentoML's multi-process /metrics: vLLM's series (what the dashboard and the HPA read)."""
    client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for name in ("vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
                 "vllm:e2e_request_latency_seconds_bucket", "vllm:num_requests_running",
                 "vllm:num_requests_waiting", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
                 "vllm:request_success_total", "vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total"):
        assert name in text, name
    assert "llmship:time_to_first_token" not in text  # no second set of serving series


def test_cli_chat_and_stat(server):
    env = {**os.environ}
    run = [sys.executable, "-m", "llmship.cli"]
    answer = subprocess.run(run + ["chat", "--url", server.url, "--max-tokens", "4", "--stream", "Hello"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert answer.returncode == 0, answer.stderr
    stat = subprocess.run(run + ["stat", "--url", server.url, "--json"], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    import json

    data = json.loads(stat.stdout)
    assert data["version"] == f"{NAME}/1" and data["workers"][0]["requests_total"] >= 1
    repl = subprocess.run(run + ["chat", "--url", server.url, "--max-tokens", "3"], input="Hi there\n\n",
                          capture_output=True, text=True, env=env, timeout=120)
    assert repl.returncode == 0 and "chatting with" in repl.stdout


def _engine_cores(pid: int) -> list[int]:
    import psutil

    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and (proc.cmdline() or [""])[0].startswith("VLLM::EngineCore"):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def test_zy_reload_swaps_the_engine_in_place_without_failing_a_request(server, tiny_built):
    """`POST /admin/reload` (what `llmship rollback` calls): the new version's engine starts beside the running one,
    a stream running on the old engine finishes on it, requests sent meanwhile all get answers (no window without
    one), and afterwards one engine runs: the new version's. Only the server's own admin token may ask."""
    from llmship.registry import ModelRegistry

    refused = httpx.post(f"{server.url}/admin/reload", headers={"x-llmship-admin-token": "guess"}, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_admin_token"
    assert httpx.post(f"{server.url}/admin/reload", timeout=10).status_code == 401
    before = _engine_cores(server.pid)
    assert len(before) == 1
    register_champion(NAME, tiny_built, "vllm")  # version 2 is champion now

    lines: list[str] = []
    answers: list[tuple[int, str | None]] = []
    started, done = threading.Event(), threading.Event()

    def stream():
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=120,
                          json={"model": NAME, "messages": [{"role": "user", "content": "Long story."}],
                                "max_tokens": 200, "stream": True, "ignore_eos": True}) as resp:
            lines.append(resp.headers["x-llmship-model-version"])
            for line in iter_sse_lines(resp):
                if line:
                    lines.append(line)
                    started.set()

    def poll():
        with httpx.Client(timeout=60) as c:
            while not done.is_set():
                r = c.post(f"{server.url}/v1/completions", json={"model": NAME, "prompt": "Hi", "max_tokens": 2})
                answers.append((r.status_code, r.headers.get("x-llmship-model-version")))

    reader, poller = threading.Thread(target=stream), threading.Thread(target=poll)
    reader.start()
    assert started.wait(60)
    poller.start()
    try:
        answer = process.reload(server.port, timeout_s=180)
    finally:
        done.set()
        poller.join(60)
        reader.join(120)
    assert (answer["version"], answer["previous"], answer["swapped"]) == (f"{NAME}/2", f"{NAME}/1", True)
    assert lines[0] == f"{NAME}/1" and lines[-1] == "data: [DONE]"  # the stream finished on the old engine
    assert sum('"finish_reason":"length"' in line for line in lines) == 1
    assert answers and all(code == 200 for code, _ in answers), answers  # nothing failed during the swap
    versions = [v for _, v in answers]
    assert versions[0] == f"{NAME}/1" and versions[-1] == f"{NAME}/2", versions  # old answered, then the new
    assert versions == sorted(versions)  # once the new engine answers, the old one never does again
    after = httpx.get(f"{server.url}/v1/models", timeout=10)
    assert after.headers["x-llmship-model-version"] == f"{NAME}/2"
    cores = _engine_cores(server.pid)
    assert len(cores) == 1 and cores != before  # the old engine stopped; one engine serves

    assert process.reload(server.port)["swapped"] is False  # the alias names what serves: nothing to do
    ModelRegistry().rollback(NAME)  # champion back to 1: the service swaps back (the tests before run on 1)
    assert process.reload(server.port, timeout_s=180)["version"] == f"{NAME}/1"


def test_zy_a_deploys_check_on_a_staged_engine_is_the_engine_the_swap_serves(server, tiny_built):
    """`POST /admin/check` (a re-deploy's engine check, ``llmship.serving.staging``): the candidate engine starts
    beside the serving one, is checked there and kept unrouted; the reload that follows serves that same engine (the
    registered copy has the same files) without starting another; a deploy whose gates failed stops it instead
    (``/admin/discard``). A check under other engine settings is a 409 (the deploy then checks in a subprocess);
    only the admin token may ask."""
    from llmship.engine.settings import EngineSettings
    from llmship.registry import ModelRegistry
    from llmship.validate.engine_check import EngineCheckReport, EngineCheckSpec, reference_greedy

    assert httpx.post(f"{server.url}/admin/check", json={}, timeout=10).status_code == 401
    settings = EngineSettings.from_env({**os.environ, **TEST_ENGINE_ENV, "LLMSHIP_MODEL_URI": f"models:/{NAME}@champion"})
    ref = reference_greedy(tiny_built.folder, ["Hello there"], 4)
    spec = EngineCheckSpec(hf_dir=str(tiny_built.folder), settings=settings, parity_prompts=ref.prompts,
                           reference_greedy=ref.greedy, reference_top=ref.top,
                           smoke_prompts=[{"id": "hi", "messages": [{"role": "user", "content": "Hi"}]}],
                           smoke_max_tokens=4, batches=[1, 2], max_tokens=4, repeats=1)
    other = spec.model_copy(update={"settings": settings.model_copy(update={"max_num_seqs": 3})})
    with pytest.raises(process.ReloadUnavailable, match="engine settings are not this service's"):
        process.admin_post(server.port, "check", other.model_dump(mode="json"), 60)

    serving = _engine_cores(server.pid)
    process.admin_post(server.port, "check", spec.model_dump(mode="json"), 300)
    assert len(_engine_cores(server.pid)) == 2
    # the deploy's gates failed: its promote step stops the staged engine
    assert process.admin_post(server.port, "discard", None, 60) == {"discarded": True}
    assert _engine_cores(server.pid) == serving
    assert process.admin_post(server.port, "discard", None, 60) == {"discarded": False}

    report = EngineCheckReport.model_validate(process.admin_post(server.port, "check", spec.model_dump(mode="json"),
                                                                 300))
    assert report.where == "service" and report.engine_start_s > 0
    assert report.parity.positions == 4 and report.smoke.results[0].id == "hi"
    assert [row.batch for row in report.bench.rows] == [1, 2] and report.bench.rows[0].peak_rss_mb > 0
    staged = [pid for pid in _engine_cores(server.pid) if pid not in serving]
    assert len(staged) == 1  # checked beside the serving engine, which still answers alone
    assert httpx.get(f"{server.url}/v1/models", timeout=10).headers["x-llmship-model-version"] == f"{NAME}/1"

    version = register_champion(NAME, tiny_built, "vllm").by_alias(NAME, "champion").version
    answer = process.reload(server.port, timeout_s=180)
    assert (answer["version"], answer["swapped"], answer["staged"]) == (f"{NAME}/{version}", True, True)
    assert answer["engine_start_s"] == 0.0  # nothing started: the checked engine took over
    assert _engine_cores(server.pid) == staged
    chat = httpx.post(f"{server.url}/v1/completions", json={"model": NAME, "prompt": "Hi", "max_tokens": 2},
                      timeout=60)
    assert chat.status_code == 200 and chat.headers["x-llmship-model-version"] == f"{NAME}/{version}"

    ModelRegistry().rollback(NAME)  # champion back to 1 (the tests after run on it): no staged engine, one starts
    back = process.reload(server.port, timeout_s=180)
    assert back["version"] == f"{NAME}/1" and back["staged"] is False and back["engine_start_s"] > 0


def test_zy_a_rollback_whose_engine_cannot_start_leaves_the_release_as_it_was(server, tmp_path):
    """`llmship rollback` to a version whose engine fails to start: the swap fails, the engine that was serving
    never stopped, the aliases go back, and the error says so in one line."""
    import json

    from llmship.config import ServeConfig
    from llmship.registry import ModelRegistry
    from llmship.serving.rollback import rollback
    from llmship.validate.gates import GateReport

    registry = ModelRegistry()
    broken = tmp_path / "broken" / "hf"
    broken.mkdir(parents=True)
    (broken / "README.md").write_text("no config.json: not a model folder")
    ref = registry.register(NAME, broken.parent, tags={"serve_backend": "vllm"})
    registry.promote(NAME, ref.version, GateReport(results=[]))
    registry.rollback(NAME)  # champion is the serving version again; `previous` is the broken one
    serving = registry.by_alias(NAME, "champion").version
    process.write_deploy_summary(server, {
        "bento": "bentos.chat.service:Chat", "model_name": NAME, "model_version": serving, "alias": "champion",
        "tracking_uri": registry.tracking_uri, "serve_config": ServeConfig(port=server.port).model_dump(mode="json")})
    with pytest.raises(ServeError) as err:
        rollback()
    assert f"rollback to version {ref.version} failed" in str(err.value) and "no config.json" in str(err.value)
    assert f"champion is version {serving} again and serving" in str(err.value) and "\n" not in str(err.value)
    assert registry.by_alias(NAME, "champion").version == serving
    assert registry.by_alias(NAME, "previous").version == ref.version
    answer = httpx.post(f"{server.url}/v1/completions", json={"model": NAME, "prompt": "Hi", "max_tokens": 2},
                        timeout=60)
    assert answer.status_code == 200 and answer.headers["x-llmship-model-version"] == f"{NAME}/{serving}"
    assert len(_engine_cores(server.pid)) == 1
    assert json.loads(process.deploy_summary_path().read_text())["model_version"] == serving


def test_zz_stopping_the_server_drains_a_running_stream(server):
    """SIGTERM mid-stream: the stream still ends with its finish reason and [DONE] (runs last: it stops the server)."""
    lines: list[str] = []
    started = threading.Event()

    def read():
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=120,
                          json={"model": NAME, "messages": [{"role": "user", "content": "Long story."}],
                                "max_tokens": 230, "n": 8, "stream": True, "ignore_eos": True}) as resp:
            for line in iter_sse_lines(resp):
                if line:  # SSE events are separated by blank lines
                    lines.append(line)
                    started.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(60)
    os.kill(server.pid, signal.SIGTERM)  # what `llmship serve stop` and Kubernetes send: to the leader only
    reader.join(120)
    assert lines[-1] == "data: [DONE]", lines[-3:]
    assert sum('"finish_reason":"length"' in line for line in lines) == 8  # every sequence ran to its end
    assert not any('"finish_reason":"abort"' in line for line in lines)

