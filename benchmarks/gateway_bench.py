"""What the gateway costs per request, measured in one run against its peer: the same app without it.

Drives ASGI apps directly (no sockets, no HTTP parsing: only the middleware's own work shows) with a chat-sized
JSON body: the FastAPI route behind it parses the body and answers a small JSON document, like a cached
completion. Configurations, each over the same requests:

- bare: the app alone;
- gateway, no auth: request caps + audit line;
- gateway, auth: + key lookup (SQLite) and usage counting;
- gateway, auth + limits: + rpm/tpm sliding windows and the parallel counter (memory storage).

Prints µs per request and the ratio to bare.  ``python benchmarks/gateway_bench.py [--requests N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI, Request

from llmship.gateway import Gateway, GatewaySettings, KeyStore
from llmship.gateway.usage import report_usage

BODY = json.dumps({"model": "m", "max_tokens": 16, "messages": [
    {"role": "system", "content": "You are a helpful assistant. " * 8},
    {"role": "user", "content": "Summarise the release notes for version 2 in three bullet points. " * 4}]}).encode()


def target() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        report_usage(len(json.dumps(body["messages"])) // 4, 16)
        return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "ok " * 16}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 16, "total_tokens": 116}}

    return app


async def call(app, key: str | None) -> int:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 3000), "root_path": ""}
    sent = False
    status = 0

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def timed(app, key: str | None, requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await call(app, key)
    return (time.perf_counter() - start) / requests * 1e6


async def measure(setups: list[tuple[str, object, str | None]], requests: int, rounds: int = 7) -> dict[str, float]:
    """Rounds interleave the configurations, so a busy moment on the machine hits them all alike; the median
    round counts."""
    for _, app, key in setups:  # warm-up
        for _ in range(50):
            assert await call(app, key) == 200
    samples: dict[str, list[float]] = {name: [] for name, _, _ in setups}
    for _ in range(rounds):
        for name, app, key in setups:
            samples[name].append(await timed(app, key, requests // rounds))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = KeyStore(Path(tmp) / "keys.db")
        _, plain = store.create("plain")
        _, limited = store.create("limited", rpm=10**9, tpm=10**12, max_parallel=1000)
        audit = str(Path(tmp) / "audit.jsonl")
        setups = [
            ("bare", target(), None),
            ("gateway, no auth", Gateway(target(), GatewaySettings(audit_path=audit)), None),
            ("gateway, auth", Gateway(target(), GatewaySettings(auth=True, audit_path=audit), store=store), plain),
            ("gateway, auth + limits", Gateway(target(), GatewaySettings(auth=True, audit_path=audit), store=store),
             limited),
        ]
        results = asyncio.run(measure(setups, args.requests))
        bare = results["bare"]
        print(f"{'configuration':<26} {'µs/request':>11} {'vs bare':>8} {'added µs':>9}")
        for name, us in results.items():
            print(f"{name:<26} {us:>11.1f} {us / bare:>7.2f}x {us - bare:>9.1f}")
        store.close()


if __name__ == "__main__":
    main()
