"""Headers on every response: the request id and the model version that answered."""

from __future__ import annotations

import uuid
from typing import Any


class ResponseHeaders:
    """Adds ``x-request-id`` and ``x-llmship-model-version`` (``app.state.model_version``) to every response.

    Pure ASGI on purpose: ``@app.middleware("http")`` (BaseHTTPMiddleware)
    re-pipes every streamed chunk through a memory stream and hides the
    client's disconnect from the streaming response, so an abandoned stream
    would keep its batch slot until it finished.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id") or uuid.uuid4().hex.encode()
        state = scope["app"].state if "app" in scope else None  # now: an app mounted inside replaces scope["app"]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [] if b"x-request-id" in present else [(b"x-request-id", request_id)]
                version = getattr(state, "model_version", None)
                if version and b"x-llmship-model-version" not in present:  # a hosted release answered: its own
                    extra.append((b"x-llmship-model-version", version.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
