"""Server-sent events for llmship's own streaming routes (the RAG service): stop on disconnect, errors in-band."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from llmship.errors import LlmshipError
from llmship.openai import errors


class EventStream(StreamingResponse):
    """SSE that stops generating the moment the client goes away.

    With ASGI spec 2.4 servers Starlette only learns of a disconnect when a
    write fails, and then merely abandons the generator; a model keeps
    decoding for nobody meanwhile. Here a listener watches ``receive`` for
    ``http.disconnect`` and closes the generator at once, which cancels the
    request in the scheduler and frees its batch slot before the next step.
    """

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:  # type: ignore[override]
        async def stream() -> None:
            try:
                await self.stream_response(send)
            except OSError:
                pass  # the client is gone; the listener below sees the disconnect too

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        writer, listener = asyncio.ensure_future(stream()), asyncio.ensure_future(listen())
        try:
            await asyncio.wait({writer, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, listener):
                task.cancel()
            await asyncio.gather(writer, listener, return_exceptions=True)
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def sse_response(events: AsyncIterator[str], headers: dict[str, str] | None = None) -> StreamingResponse:
    return EventStream(events, media_type="text/event-stream",
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})


def sse_error(err: BaseException) -> str:
    """After the headers are sent an error can only travel in-band, as OpenAI does."""
    if isinstance(err, LlmshipError):
        body = errors.error_body(str(err), err.status, type_=err.type, param=err.param, code=err.code)
    else:
        body = errors.error_body("internal error", 500)
    return f"data: {json.dumps(body)}\n\n"
