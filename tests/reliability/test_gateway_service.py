"""The gateway under ``bentoml serve``: the chat Bento with ``LLMSHIP_GATEWAY_AUTH=true`` (the tiny model), keys
made in the same store ``llmship keys`` uses. Proves, on the real process: every route but the probes — BentoML's
own included — answers 401 without a key; a key over its limit gets OpenAI's 429; the CLI sends
``LLMSHIP_API_KEY``; ``llmship keys usage`` counts what the service served; and no key is ever written to any
log or file the service keeps (a grep over the server log, the audit file and the whole ``LLMSHIP_HOME``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from llmship.gateway import KeyStore
from llmship.serving import process
from llmship.serving.bento import bentoml_env
from tests.conftest import REPO, free_port, fresh_minute, llmship_home, register_champion
from tests.engine_host import TEST_ENGINE_ENV

NAME = "tiny-gated"
PROBES = ("/livez", "/readyz", "/healthz")
BENTOML_ROUTES = ("/", "/docs.json", "/metrics")  # BentoML's own, outside the FastAPI app


@pytest.fixture(scope="module")
def served(tiny_built, tmp_path_factory):
    with llmship_home(tmp_path_factory.mktemp("gated-home")) as home:
        registry = register_champion(NAME, tiny_built, "vllm")
        keys = KeyStore(home / "gateway" / "keys.db")
        made = {name: keys.create(name, **limits)[1] for name, limits in
                (("ops", {}), ("limited", {"rpm": 3}), ("revoked", {}), ("rotated", {}))}
        keys.revoke("revoked")
        made["rotated-new"] = keys.rotate("rotated")[1]
        keys.close()
        env = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri, **TEST_ENGINE_ENV,
               "LLMSHIP_GATEWAY_AUTH": "true"}
        try:
            info = process.start("bentos.chat.service:Chat", model_uri=f"models:/{NAME}@champion", port=free_port(),
                                 env=env, wait_s=180, cwd=REPO)
            yield {"url": info.url, "log": Path(info.log), "home": home, "keys": made}
        finally:
            process.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_protected_route_needs_a_key(served):
    url, key = served["url"], served["keys"]["ops"]
    schema = httpx.get(f"{url}/openapi.json", headers=bearer(key), timeout=10).json()
    routes = [(method.upper(), path.replace("{model_id}", NAME).replace("{session_id}", "s1"))
              for path, ops in schema["paths"].items() for method in ops]
    routes += [("GET", p) for p in (*BENTOML_ROUTES, "/openapi.json", "/docs", "/stat", "/v1/models")]
    assert len(set(routes)) >= 12
    wrong = {"none": {}, "garbage": bearer("sk-llmship-00000000-" + "A" * 43), "basic": {"Authorization": "Basic x"},
             "revoked": bearer(served["keys"]["revoked"]), "rotated away": bearer(served["keys"]["rotated"])}
    for method, path in sorted(set(routes)):
        for label, headers in wrong.items():
            r = httpx.request(method, f"{url}{path}", headers=headers, json={} if method == "POST" else None,
                              timeout=10)
            assert r.status_code == 401, (method, path, label, r.status_code)
            assert r.json()["error"]["code"] == "invalid_api_key" and r.json()["error"]["type"] == \
                "authentication_error"
    for path in PROBES:
        assert httpx.get(f"{url}{path}", timeout=10).status_code == 200, path
    ok = httpx.get(f"{url}/metrics", headers=bearer(served["keys"]["rotated-new"]), timeout=10)
    assert ok.status_code == 200 and "vllm:prompt_tokens_total" in ok.text


def test_admin_reload_takes_the_servers_admin_token_not_an_api_key(served):
    """With keys on, `llmship rollback` still reloads (the gateway lets /admin/ through to the app's own token
    check), and no API key, however valid, can reload the model."""
    url = served["url"]
    for headers in ({}, bearer(served["keys"]["ops"])):
        r = httpx.post(f"{url}/admin/reload", headers=headers, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token", r.text
    answer = process.reload(int(url.rsplit(":", 1)[1]), timeout_s=60)
    assert (answer["version"], answer["swapped"]) == (f"{NAME}/1", False)  # champion is what serves: no swap


def test_a_key_over_its_limit_gets_openai_429(served):
    client = openai.OpenAI(base_url=f"{served['url']}/v1", api_key=served["keys"]["limited"], max_retries=0)
    fresh_minute()
    for _ in range(3):
        client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()
    response = caught.value.response
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_cli_sends_llmship_api_key_and_counts_usage(served):
    env = {**os.environ, "LLMSHIP_HOME": str(served["home"])}
    env.pop("LLMSHIP_API_KEY", None)
    run = [sys.executable, "-m", "llmship.cli"]
    denied = subprocess.run(run + ["models", "--url", served["url"]], capture_output=True, text=True, env=env,
                            timeout=60)
    assert denied.returncode != 0 and len(denied.stderr.strip().splitlines()) == 1
    assert "401" in denied.stderr and "LLMSHIP_API_KEY" in denied.stderr
    env["LLMSHIP_API_KEY"] = served["keys"]["ops"]
    listed = subprocess.run(run + ["models", "--url", served["url"]], capture_output=True, text=True, env=env,
                            timeout=60)
    assert listed.returncode == 0 and NAME in listed.stdout
    answer = subprocess.run(run + ["chat", "--url", served["url"], "--max-tokens", "3", "Hello"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert answer.returncode == 0, answer.stderr
    usage = subprocess.run(run + ["keys", "usage", "--json"], capture_output=True, text=True, env=env, timeout=60)
    ops = next(k for k in json.loads(usage.stdout) if k["name"] == "ops")
    assert ops["requests"] >= 3 and ops["tokens"] > 0 and ops["last_used_at"]


def test_keys_never_reach_a_log_or_a_file(served):
    url, keys = served["url"], served["keys"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=keys["ops"], max_retries=0)
    client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    list(client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                        stream=True))
    for key in keys.values():  # every kind of failure too: unknown, revoked, in the wrong header, in a body
        httpx.get(f"{url}/v1/models", headers=bearer(key + "x"), timeout=10)
        httpx.get(f"{url}/v1/models", headers={"X-Api-Key": key}, timeout=10)
        httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), timeout=30,
                   json={"model": "nope", "messages": [{"role": "user", "content": "x"}], "user": key[:12]})
    audit = served["home"] / "gateway" / "audit.jsonl"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert any(a["key"] == "ops" and a["status"] == 200 and a["completion_tokens"] for a in lines)
    files = [p for p in served["home"].rglob("*") if p.is_file()] + [served["log"]]
    assert audit in files and served["log"].stat().st_size > 0
    for path in files:
        data = path.read_bytes()
        for name, key in keys.items():
            secret = key.split("-", 3)[3]  # sk-llmship-<id>-<secret>; the secret itself may hold "-"
            assert secret.encode() not in data, f"the {name} key's secret is in {path}"
