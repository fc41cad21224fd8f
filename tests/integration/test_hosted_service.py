"""Hosted models as releases (llmship.hosted), end to end on 127.0.0.1 with real servers only.

The upstream is a real OpenAI-compatible server: the project's own chat service (vLLM on the tiny model) with the
gateway's keys on, so the hosted release's key is really needed and really checked. A TCP relay in front of it
(tests/helpers/relay.py) plays the network failures. The service under test is a second chat service that serves
a wider random model of its own (so a long stream keeps its one slot busy), the hosted releases beside it (``LLMSHIP_HOSTED``) and two fallback aliases; clients talk
to it with the official ``openai`` SDK and raw HTTP. Releases go through the same core calls the pipeline's steps
make: describe → check (smoke, perplexity, benchmark through the client) → register → promote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from llmship.config import BenchConfig, BuildConfig, EvalConfig, ServeConfig
from llmship.gateway.keys import KeyStore
from llmship.hosted import describe
from llmship.hosted.check import run_hosted_check
from llmship.models import build_model
from llmship.registry import ModelRegistry
from llmship.release import promote_release, register_hosted
from llmship.serving import process
from llmship.serving.bento import bentoml_env
from llmship.validate.gates import GateThresholds
from tests.conftest import CORPUS, REPO, free_port, llmship_home, register_champion
from tests.engine_host import TEST_ENGINE_ENV
from tests.helpers.relay import Relay
from tests.tiny_model import make_tiny_model

MODEL = "tiny-up"  # the upstream's model (and what each hosted release names there)
SLOW = "slow-own"  # the service's own model: wide enough that a long stream keeps its one slot busy for seconds
SMALL_BENCH = BenchConfig(batches=[1, 2], max_tokens=8, repeats=1)
GATES = GateThresholds(max_perplexity=1e9, min_decode_tok_s=0.1, max_ttft_s=30.0)  # a random tiny model's quality


def release(name: str, build: BuildConfig) -> str:
    """What deploy_llm does for a hosted source, minus ZenML: returns ``name/version``."""
    spec = describe(build)
    check = run_hosted_check(spec, EvalConfig(smoke_max_tokens=6, window=64, max_eval_tokens=400), SMALL_BENCH)
    registry = ModelRegistry()
    ref = register_hosted(registry, name, spec, smoke=check.smoke, bench=check.bench, ppl=check.perplexity,
                          perplexity_unavailable=check.perplexity_unavailable, chart=None,
                          lineage={"test": "hosted"}, params={})
    promotion = promote_release(registry, ref, GATES, with_parity=False)
    return f"{name}/{promotion.version}"


class World:
    upstream: process.ServerInfo
    service: process.ServerInfo
    relay: Relay
    home: Path
    key: str  # the service's client key
    up_key: str  # the hosted releases' key at the upstream (UP_KEY)
    limited_key: str  # an upstream key allowed 1 request a minute (UP_LIMITED_KEY)


@pytest.fixture(scope="module")
def world(tiny_built, tmp_path_factory):
    w = World()
    saved = {k: os.environ.get(k) for k in ("UP_KEY", "UP_LIMITED_KEY", "MLFLOW_TRACKING_URI")}
    # this home's own registry: an earlier test's MLflow may have exported another store's URI
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with llmship_home(tmp_path_factory.mktemp("hosted-home")) as home:
        w.home = home
        registry = register_champion(MODEL, tiny_built, "vllm")
        assert registry.tracking_uri.startswith(f"sqlite:///{home}")
        slow = make_tiny_model(tmp_path_factory.mktemp("hosted-slow") / "slow", CORPUS, hidden_size=512, layers=8,
                               max_positions=1024)
        register_champion(SLOW, build_model(f"path:{slow}", cache_dir=tmp_path_factory.mktemp("hosted-slow-cache")),
                          "vllm")
        keys = KeyStore()
        _, w.key = keys.create("client")
        _, w.up_key = keys.create("hosted-upstream")
        _, w.limited_key = keys.create("hosted-limited", rpm=1)
        base = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri, **TEST_ENGINE_ENV,
                "LLMSHIP_GATEWAY_AUTH": "true"}
        os.environ.update(UP_KEY=w.up_key, UP_LIMITED_KEY=w.up_key)  # validated with a full key; served, below,
        # with a key the upstream allows 1 request a minute: the key is read where the call is made, so rotating
        # it needs no new release
        try:
            w.upstream = process.start("bentos.chat.service:Chat", model_uri=f"models:/{MODEL}@champion",
                                       port=free_port(), env=base, wait_s=180, cwd=REPO)
            w.relay = Relay(w.upstream.port)
            up = f"{w.upstream.url}/v1#{MODEL}"
            assert release("up-hosted", BuildConfig(source=f"openai:{up}", api_key_env="UP_KEY")) == "up-hosted/1"
            release("up-limited", BuildConfig(source=f"openai:{up}", api_key_env="UP_LIMITED_KEY"))
            release("relay-hosted", BuildConfig(source=f"openai:http://127.0.0.1:{w.relay.port}/v1#{MODEL}",
                                                api_key_env="UP_KEY", timeout_s=3))
            release("up-litellm", BuildConfig(source=f"litellm:hosted_vllm/{MODEL}", api_base=f"{w.upstream.url}/v1",
                                              api_key_env="UP_KEY"))
            os.environ["UP_LIMITED_KEY"] = w.limited_key
            serve = ServeConfig(hosted=["up-hosted", "up-limited", "relay-hosted", "up-litellm"],
                                fallbacks={"assistant": [SLOW, "up-hosted"], "via-relay": ["relay-hosted", "up-hosted"]},
                                fallback_timeout_s=2)
            env = {**base, **serve.hosted_env(), "LLMSHIP_MAX_BATCH": "1", "LLMSHIP_MAX_WAITING": "0",
                   "LLMSHIP_MAX_MODEL_LEN": "1024"}
            w.service = process.start("bentos.chat.service:Chat", model_uri=f"models:/{SLOW}@champion",
                                      port=free_port(), env=env, wait_s=180, cwd=REPO)
            yield w
        finally:
            process.stop()
            if hasattr(w, "relay"):
                w.relay.close()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture()
def client(world) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{world.service.url}/v1", api_key=world.key, max_retries=0)


def upstream_client(world) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{world.upstream.url}/v1", api_key=world.up_key, max_retries=0)


ASK = {"messages": [{"role": "user", "content": "Name three colors."}], "max_tokens": 8, "temperature": 0}


def test_registered_hosted_version_describes_the_upstream_without_its_key(world):
    registry = ModelRegistry()
    ref = registry.by_alias("up-hosted", "champion")
    assert ref.tags["serve_backend"] == "hosted" and ref.tags["hosted_api_key_env"] == "UP_KEY"
    gates = {g["name"]: g for g in registry.gate_results(ref)}
    assert gates["parity_top1_agreement"]["skipped"] and not gates["parity_top1_agreement"]["passed"]
    assert gates["engine_parity_top1_agreement"]["skipped"]
    assert gates["smoke_pass_rate"]["passed"] and gates["ttft_s"]["passed"], gates
    assert gates["perplexity"]["passed"], (gates["perplexity"], ref.tags.get("perplexity_status"))
    metrics = registry.metrics(ref)
    assert metrics["perplexity"] > 1 and metrics["bench_hosted_remote_b2_decode_tok_s"] > 0
    litellm_ref = registry.by_alias("up-litellm", "champion")
    assert "not available" in litellm_ref.tags["perplexity_status"]
    assert next(g for g in registry.gate_results(litellm_ref) if g["name"] == "perplexity")["skipped"]


def test_models_lists_the_model_the_hosted_releases_and_the_aliases(client):
    cards = {m.id: m for m in client.models.list().data}
    assert set(cards) == {SLOW, "up-hosted", "up-limited", "relay-hosted", "up-litellm", "assistant", "via-relay"}
    assert cards["up-hosted"].root == "up-hosted/1" and cards["up-hosted"].owned_by == "openai"
    assert cards["assistant"].root == f"{SLOW} > up-hosted"


@pytest.mark.parametrize("hosted", ["up-hosted", "up-litellm"])
def test_chat_and_stream_go_to_the_upstream(world, client, hosted):
    direct = upstream_client(world).chat.completions.create(model=MODEL, **ASK)
    raw = client.chat.completions.with_raw_response.create(model=hosted, **ASK)
    assert raw.headers["x-llmship-model-version"] == f"{hosted}/1"
    answer = raw.parse()
    assert answer.choices[0].message.content == direct.choices[0].message.content  # greedy: the same model
    assert answer.usage.completion_tokens == direct.usage.completion_tokens
    chunks = list(client.chat.completions.create(model=hosted, stream=True, stream_options={"include_usage": True},
                                                 **ASK))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == direct.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == direct.usage.completion_tokens
    plain = list(client.chat.completions.create(model=hosted, stream=True, **ASK))  # no usage asked: none sent
    assert all(c.usage is None for c in plain)


def test_completions_and_sessions_on_a_hosted_release(client):
    text = client.completions.create(model="up-hosted", prompt="Once upon a time", max_tokens=5, temperature=0)
    assert text.choices[0].text and text.usage.completion_tokens >= 1
    first = client.chat.completions.create(model="up-hosted", extra_body={"session_id": "hosted-s1"}, **ASK)
    assert first.choices[0].message.content
    info = httpx.get(f"{client.base_url}sessions/hosted-s1", headers={"Authorization": f"Bearer {client.api_key}"},
                     timeout=10).json()
    assert info["messages"] == 2  # the turn and its answer, kept by llmship in front of the upstream


def test_the_gateway_guards_hosted_models(world, client):
    anonymous = httpx.post(f"{world.service.url}/v1/chat/completions", json={"model": "up-hosted", **ASK}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    client.chat.completions.create(model="up-hosted", **ASK)
    lines = [json.loads(x) for x in (world.home / "gateway" / "audit.jsonl").read_text().splitlines()]
    assert any(x.get("model") == "up-hosted" and x.get("status") == 200 for x in lines)


def test_an_upstream_429_stays_a_429_with_retry_after(world):
    url = f"{world.service.url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {world.key}"}
    statuses = [httpx.post(url, json={"model": "up-limited", **ASK}, headers=headers, timeout=30) for _ in range(2)]
    assert statuses[0].status_code == 200
    limited = statuses[1]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error" and limited.json()["error"]["message"]


@pytest.mark.parametrize(("mode", "status", "code"), [("refuse", 503, "upstream_unavailable"),
                                                      ("hang", 504, "upstream_timeout"),
                                                      ("fail500", 500, None)])
def test_upstream_failures_are_openai_errors(world, mode, status, code):
    world.relay.set_mode(mode)
    try:
        resp = httpx.post(f"{world.service.url}/v1/chat/completions", json={"model": "relay-hosted", **ASK},
                          headers={"Authorization": f"Bearer {world.key}"}, timeout=30)
    finally:
        world.relay.set_mode("forward")
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == code and error["message"] and error["type"] == "server_error"
    if status in (503, 504):
        assert resp.headers["retry-after"]


def test_fallback_when_the_first_has_no_first_token_in_time(world, client):
    world.relay.set_mode("hang")
    try:
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(model="via-relay", stream=True, **ASK)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        waited = time.monotonic() - started
    finally:
        world.relay.set_mode("forward")
    assert raw.headers["x-llmship-model-version"] == "up-hosted/1"
    assert text
    assert waited >= 2  # it did wait for the first target (fallback_timeout_s) before asking the next
    answered = client.chat.completions.with_raw_response.create(model="via-relay", **ASK)
    assert answered.headers["x-llmship-model-version"] == "relay-hosted/1"  # the first answers again


def test_fallback_when_the_self_hosted_engine_is_at_capacity(world, client):
    """The service decodes one sequence at a time with no queue (max_batch 1, max_waiting 0): while one long
    stream runs on the engine, the alias's next target (the hosted release) answers."""
    assert client.chat.completions.with_raw_response.create(model="assistant", **ASK).headers[
        "x-llmship-model-version"] == f"{SLOW}/1"
    busy = threading.Event()
    done = threading.Event()

    def long_stream() -> None:
        stream = client.chat.completions.create(model=SLOW, messages=ASK["messages"], max_tokens=900, stream=True,
                                                extra_body={"ignore_eos": True})
        for _ in stream:
            busy.set()
        done.set()

    worker = threading.Thread(target=long_stream)
    worker.start()
    try:
        assert busy.wait(60)
        running_when_sent = not done.is_set()
        raw = client.chat.completions.with_raw_response.create(model="assistant", **ASK)
    finally:
        worker.join(120)
    assert running_when_sent, "the long stream ended before the fallback request was sent: nothing was tested"
    assert raw.headers["x-llmship-model-version"] == "up-hosted/1"
    assert raw.parse().choices[0].message.content


def test_stat_shows_hosted_releases(world):
    stat = httpx.get(f"{world.service.url}/stat", headers={"Authorization": f"Bearer {world.key}"}, timeout=10).json()
    hosted = {h["model"]: h for h in stat["hosted"]}
    assert hosted["up-hosted"]["version"] == "up-hosted/1" and hosted["up-hosted"]["requests_total"] >= 3
    assert hosted["relay-hosted"]["base_url"] == f"http://127.0.0.1:{world.relay.port}/v1"
    assert stat["fallbacks"]["assistant"] == [SLOW, "up-hosted"]
    shown = subprocess.run([sys.executable, "-m", "llmship.cli", "stat", "--url", world.service.url], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "LLMSHIP_API_KEY": world.key})
    assert shown.returncode == 0, shown.stderr
    assert "up-hosted/1" in shown.stdout and f"alias assistant: {SLOW} > up-hosted" in shown.stdout


def test_zz_a_new_hosted_version_swaps_in_place_and_rolls_back(world, client):
    from llmship.serving.hosted import serve_hosted
    from llmship.serving.rollback import rollback

    up = f"{world.upstream.url}/v1#{MODEL}"
    assert release("up-hosted", BuildConfig(source=f"openai:{up}", api_key_env="UP_KEY")) == "up-hosted/2"
    config = ServeConfig(host="127.0.0.1", port=world.service.port, hosted=["up-hosted"])
    process.write_deploy_summary(world.service, {"model_name": SLOW, "model_version": "1", "alias": "champion",
                                                 "serve_config": config.model_dump(mode="json")})
    answer = serve_hosted("up-hosted", config)
    assert (answer["version"], answer["previous"]) == ("up-hosted/2", "up-hosted/1")
    served = client.chat.completions.with_raw_response.create(model="up-hosted", **ASK)
    assert served.headers["x-llmship-model-version"] == "up-hosted/2"
    result = rollback(name="up-hosted")
    assert (result.from_version, result.to_version, result.swapped, result.restarted) == ("2", "1", True, False)
    back = client.chat.completions.with_raw_response.create(model="up-hosted", **ASK)
    assert back.headers["x-llmship-model-version"] == "up-hosted/1"


def test_zz_no_key_reaches_the_registry_the_logs_or_the_audit_file(world):
    secrets = [world.up_key.encode(), world.limited_key.encode(), world.key.encode()]
    searched = []
    for path in world.home.rglob("*"):
        if path.is_file() and path.stat().st_size < 200 * 2**20:
            data = path.read_bytes()
            searched.append(path.name)
            leaked = [s[:6] for s in secrets if s in data]
            assert not leaked, f"a key ({leaked}) is in {path}"
    # the registry (its database, each hosted version's description), both services' logs and the audit file
    assert {"hosted.json", "audit.jsonl"} <= set(searched), searched
    assert any(n.endswith(".db") for n in searched) and sum(n.startswith("serve-") for n in searched) >= 2, searched
