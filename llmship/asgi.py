"""Three small ASGI moves every layer that reads a request body before passing it on needs (the gateway, the
OpenAI app's engine proxy and model router, the hosted app): read the body, hand it on, answer JSON."""

from __future__ import annotations

import json
from typing import Any


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
