"""Request-size limits enforced before FastAPI parses a body.

A pure ASGI middleware (not ``@app.middleware("http")``) so an oversized body
is refused from its ``Content-Length`` without reading it, and a chunked body
is cut off as soon as it crosses the limit — either way a 413 in the OpenAI
error format, never a parsed multi-gigabyte JSON document.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from llmship.asgi import send_error

Scope = dict[str, Any]


class _TooLarge(HTTPException):
    """Raised from ``receive``; FastAPI passes HTTPExceptions through body parsing to the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            from llmship.gateway.middleware import drain_body

            await drain_body(receive, int(length))
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Any) -> None:
        await send_error(send, f"request body is larger than the limit of {self.max_bytes} bytes", 413,
                         code="request_too_large")
