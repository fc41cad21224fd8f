"""``llmship:gateway_requests_total{service, key_name, code}``: every request the gateway finishes, counted through
the gateway on a small ASGI app (no model), and read back from prometheus_client's registry and exposition."""

from __future__ import annotations

import asyncio

import httpx
import prometheus_client
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from llmship.gateway import Gateway, GatewaySettings, KeyStore
from llmship.gateway.metrics import NAME, NO_KEY, count_request, requests_counter

SERIES = f"{NAME}_total"


async def ok(request):
    return JSONResponse({"ok": True})


async def boom(request):
    return PlainTextResponse("engine down", status_code=503)


async def health(request):
    return PlainTextResponse("\n")


APP = Starlette(routes=[Route("/v1/models", ok), Route("/v1/chat/completions", ok, methods=["POST"]),
                        Route("/fail", boom), Route("/livez", health), Route("/readyz", health)])


@pytest.fixture()
def store(tmp_path):
    s = KeyStore(tmp_path / "keys.db")
    yield s
    s.close()


def client(store, service: str, key: str | None = None, **settings) -> httpx.AsyncClient:
    gateway = Gateway(APP, settings=GatewaySettings(auth=True, audit=False, **settings), store=store, service=service)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://test", headers=headers)


def count(service: str, key_name: str, code: int) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(SERIES, {"service": service, "key_name": key_name,
                                                                 "code": str(code)})
    return value or 0.0


def test_every_finished_request_is_counted_by_service_key_and_status(store):
    _, key = store.create("team-a", models=["gemma3-270m"])
    service = "metrics-test-a"  # a label of its own: the counter is process-wide

    async def go():
        async with client(store, service, key) as http:
            assert (await http.get("/v1/models")).status_code == 200
            assert (await http.get("/v1/models")).status_code == 200
            assert (await http.get("/fail")).status_code == 503
            forbidden = await http.post("/v1/chat/completions", json={"model": "other", "messages": []})
            assert forbidden.status_code == 403
        async with client(store, service) as anonymous:
            assert (await anonymous.get("/v1/models")).status_code == 401
            assert (await anonymous.get("/livez")).status_code == 200  # probes pass untouched and uncounted
            assert (await anonymous.get("/readyz")).status_code == 200
        async with client(store, service, "sk-llmship-00000000-" + "x" * 43) as wrong:
            assert (await wrong.get("/v1/models")).status_code == 401

    asyncio.run(go())
    assert count(service, "team-a", 200) == 2
    assert count(service, "team-a", 503) == 1
    assert count(service, "team-a", 403) == 1  # the key was verified before its model was refused
    assert count(service, NO_KEY, 401) == 2  # no key, and a key that did not verify: no name to give
    assert count(service, NO_KEY, 200) == 0


def test_public_routes_count_without_a_key(store):
    service = "metrics-test-b"

    async def go():
        async with client(store, service, public_metrics=True) as http:
            # /metrics itself is not a route of this small app: the gateway lets it through and counts the 404
            assert (await http.get("/metrics")).status_code == 404

    asyncio.run(go())
    assert count(service, NO_KEY, 404) == 1


def test_the_exposed_series_name_and_labels():
    count_request("metrics-test-c", "k", 429)
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert f'{SERIES}{{code="429",key_name="k",service="metrics-test-c"}} 1.0' in text
    assert f"# TYPE {SERIES} counter" in text
    assert requests_counter() is requests_counter()  # one counter per process


def test_a_counting_failure_never_reaches_the_request(monkeypatch):
    from llmship.gateway import metrics

    def broken():
        raise RuntimeError("registry gone")

    monkeypatch.setattr(metrics, "requests_counter", broken)
    count_request("metrics-test-d", None, 200)  # logged, not raised
