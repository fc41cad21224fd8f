"""``HostedApp``: one hosted release as an ASGI app, so the chat service serves it the way it serves vLLM.

The router (``llmship.openai.routes``) wraps it in the same ``ChatTap`` as the engine, so sessions, exact usage
for the gateway and OpenAI-shaped errors come from one place. What this app does:

- **OpenAI-compatible upstreams** (``openai:``): the request goes out byte for byte but for ``model`` (the
  upstream's id), with ``Authorization: Bearer $<api_key_env>``; the answer comes back as the upstream sent it,
  streamed chunk by chunk, with its status and its ``Retry-After`` / rate-limit headers (a 429 stays a 429).
- **LiteLLM providers**: ``litellm.acompletion`` / ``atext_completion`` with the body's fields, answered as
  OpenAI JSON or SSE; LiteLLM's exceptions carry the provider's status, which is kept.
- An upstream that cannot be reached is a 503 (``upstream_unavailable``); one that does not answer within
  ``timeout_s`` (connect, or between chunks) is a 504 (``upstream_timeout``); both say ``Retry-After``. The key
  is read from the environment per request and never appears in an answer or a log line.
- A client that goes away mid-stream closes the upstream request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx

from llmship import errors
from llmship.asgi import read_body, send_error, send_json
from llmship.hosted.calls import import_litellm, litellm_kwargs
from llmship.hosted.spec import HostedKeyMissing, HostedModel

log = logging.getLogger(__name__)
Scope = dict[str, Any]
PATHS = {"/v1/chat/completions": "/chat/completions", "/v1/completions": "/completions"}
_PASSED_HEADERS = {b"content-type", b"retry-after", b"retry-after-ms"}


class HostedApp:
    def __init__(self, spec: HostedModel, http: httpx.AsyncClient | None = None) -> None:
        self.spec = spec
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(spec.timeout_s, connect=min(spec.timeout_s, 10.0)),
                                              limits=httpx.Limits(max_connections=512, max_keepalive_connections=64))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("method") != "POST" or path not in PATHS:
            await send_error(send, f"{path} is not served for hosted models (chat and completions are)", 404,
                             code="not_found")
            return
        raw = await read_body(receive)
        try:
            body = json.loads(raw)
        except ValueError as err:
            await send_error(send, f"request body is not valid JSON: {err}", 400, code="invalid_json")
            return
        if not isinstance(body, dict):
            await send_error(send, "the request body must be a JSON object", 400, code="invalid_type")
            return
        try:
            key = self.spec.api_key()
        except HostedKeyMissing as err:
            log.warning("%s", err)
            await send_error(send, str(err), 503, code=err.code)
            return
        watcher = asyncio.ensure_future(_disconnected(receive))
        worker = asyncio.ensure_future(self._litellm(path, body, send) if self.spec.via_litellm
                                       else self._forward(path, body, key, send))
        try:
            done, _ = await asyncio.wait({watcher, worker}, return_when=asyncio.FIRST_COMPLETED)
            if worker not in done:  # the client went away: stop reading from the upstream
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            else:
                worker.result()
        finally:
            watcher.cancel()
            worker.cancel()

    # ---------------------------------------------------------------- OpenAI-compatible upstreams
    async def _forward(self, path: str, body: dict, key: str | None, send: Any) -> None:
        body = {**body, "model": self.spec.model}
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        url = f"{str(self.spec.base_url).rstrip('/')}{PATHS[path]}"
        request = self.http.build_request("POST", url, content=json.dumps(body).encode(), headers=headers)
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TimeoutException:
            await send_error(send, f"{self.spec.describe()} did not answer within {self.spec.timeout_s:g} s", 504,
                             code="upstream_timeout")
            return
        except httpx.HTTPError as err:
            await send_error(send, f"{self.spec.describe()} cannot be reached: {type(err).__name__}", 503,
                             code="upstream_unavailable")
            return
        started = False
        try:
            kept = [(k.encode().lower(), v.encode()) for k, v in response.headers.items()
                    if k.lower().encode() in _PASSED_HEADERS or k.lower().startswith("x-ratelimit-")]
            await send({"type": "http.response.start", "status": response.status_code, "headers": kept})
            started = True
            async for chunk in response.aiter_bytes():  # decoded: the upstream may gzip, the client asked us
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as err:
            if not started:
                await send_error(send, f"{self.spec.describe()} failed: {type(err).__name__}", 503,
                                 code="upstream_unavailable")
                return
            # after the headers: an in-band error event, as vLLM sends one, then the end of the stream
            event = errors.error_body(f"{self.spec.describe()} stopped answering: {type(err).__name__}", 503,
                                      code="upstream_timeout" if isinstance(err, httpx.TimeoutException)
                                      else "upstream_unavailable")
            await send({"type": "http.response.body", "body": b"data: " + json.dumps(event).encode() + b"\n\n",
                        "more_body": False})
        finally:
            await response.aclose()

    # ---------------------------------------------------------------- LiteLLM providers
    async def _litellm(self, path: str, body: dict, send: Any) -> None:
        litellm = import_litellm()
        call = litellm.acompletion if path == "/v1/chat/completions" else litellm.atext_completion
        stream = body.get("stream") is True
        try:
            result = await call(**litellm_kwargs(self.spec, body))
            if not stream:
                await send_json(send, 200, _plain(result))
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
            async for chunk in result:
                data = json.dumps(_plain(chunk), separators=(",", ":")).encode()  # compact, as vLLM and OpenAI
                # send it: ChatTap spots the usage chunk by its bytes ('"usage":{')
                await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        except Exception as err:  # noqa: BLE001 - LiteLLM maps provider errors to OpenAI's exception classes, with the status
            status, headers = _litellm_status(err)
            message = f"{self.spec.describe()}: {' '.join(str(getattr(err, 'message', err)).split())[:500]}"
            await send_error(send, message, status, code="upstream_error", headers=headers)


def _plain(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else obj


def _litellm_status(err: Exception) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = getattr(err, "status_code", None)
    if not isinstance(status, int) or not 400 <= status < 600:
        name = type(err).__name__
        status = 504 if "Timeout" in name else 503
    headers: list[tuple[bytes, bytes]] = []
    response = getattr(err, "response", None)
    retry = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    if retry:
        headers.append((b"retry-after", str(retry).encode()))
    return status, headers


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
