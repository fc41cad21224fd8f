"""The small ASGI moves every layer that reads a request body before passing it on needs (the gateway, the
OpenAI app's engine proxy and model router, the hosted app): read the body, hand it on, answer JSON, answer an
OpenAI-format error."""

from __future__ import annotations

import json
from typing import Any

from llmship import errors

# statuses a client should retry; they carry Retry-After, as OpenAI's and vLLM's do
_RETRYABLE = (429, 503, 504)


async def read_body(receive: Any) -> bytes:
    """The whole request body (what arrived before a disconnect, if the client left)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts)
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that hands the app the body already read, then the client's own messages (disconnects)."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def send_json(send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": raw})


async def send_error(send: Any, message: str, status: int, *, code: str | None = None, type_: str | None = None,
                     param: str | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """OpenAI's error object with ``status``; a retryable status (429/503/504) carries ``Retry-After: 1`` unless
    ``headers`` already name one, so the SDKs' own back-off waits a moment instead of hammering."""
    extra = list(headers or [])
    if status in _RETRYABLE and not any(k.lower() == b"retry-after" for k, _ in extra):
        extra.append((b"retry-after", b"1"))
    await send_json(send, status, errors.error_body(message, status, type_=type_, param=param, code=code), extra)
