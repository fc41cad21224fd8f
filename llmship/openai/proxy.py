"""Every route llmship does not own goes to vLLM's OpenAI app, through what llmship adds around it.

``EngineRoutes`` is the ASGI app mounted behind llmship's own routes. Per request it:

- answers 503 (``Retry-After``) while the engine loads or drains, and when more generation requests are in
  flight than the batch plus ``max_waiting`` (vLLM itself queues without bound);
- opens a server-side session when a chat request names ``session_id``: the history goes in front of the new
  turn (vLLM's prefix cache then skips its prefill), the field is removed (vLLM does not know it), and the turn
  and reply are kept only when the answer completed;
- asks vLLM for usage in every stream and drops that chunk again unless the client asked for it, so the
  gateway settles each request with its exact token count (``llmship.gateway.usage``);
- rewrites vLLM's own error bodies into OpenAI's shape (``type`` such as ``invalid_request_error``, ``code`` a
  string or null): vLLM sends ``type: "BadRequestError"`` and a numeric ``code``.

Pure ASGI, so a client that goes away mid-stream reaches vLLM as a disconnect and the request is aborted.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from llmship.asgi import read_body, replay, send_error, send_json
from llmship.errors import InvalidRequest, LlmshipError
from llmship.gateway.usage import report_usage
from llmship.openai import errors
from llmship.openai.protocol import SESSION_ID_RE, huge_integer, lone_surrogate
from llmship.openai.sessions import SessionStore

Scope = dict[str, Any]
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
CHAT_PATH = "/v1/chat/completions"


@dataclass
class Load:
    """In-flight requests through the engine, for admission, ``/stat`` and the drain."""

    inflight: int = 0
    generating: int = 0
    requests_total: int = 0
    rejected_total: int = 0
    errors_total: int = 0
    generated_tokens_total: int = 0
    last_work_at: float | None = None
    last_status: int | None = None
    ok_by_path: dict[str, int] = field(default_factory=dict)


class EngineRoutes:
    """The ASGI fallback behind llmship's routes: forwards to ``app.state.engine.app`` (vLLM's OpenAI app)."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner  # the llmship FastAPI app: its state holds the engine, the sessions and the load

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # vLLM's app lifespan is run by start_engine, not by the mount
            return
        if scope["type"] != "http":
            await send_error(send, "websocket routes are not served", 404, code="not_found")
            return
        state = self.owner.state
        engine, load = state.engine, state.load
        path = scope.get("path", "")
        if path == "/chat" or path.startswith("/chat/"):  # the page's own routes did not match: not vLLM's either
            await send_error(send, f"Not found: {path}", 404, code="not_found")
            return
        if engine is None:
            await send_error(send, "the model is still loading", 503, code="not_ready")
            return
        if state.draining:
            await send_error(send, "the server is shutting down", 503, code="shutting_down")
            return
        generating = scope.get("method") == "POST" and path in GENERATION_PATHS
        if generating and load.generating >= engine.settings.max_num_seqs + engine.settings.max_waiting:
            load.rejected_total += 1
            await send_error(send, f"the server is at capacity ({load.generating} requests in flight); retry "
                               "shortly", 503, code="server_busy")
            return
        load.inflight += 1
        load.requests_total += 1
        load.generating += generating
        engine.active += 1  # the engine this request started on answers it, even if a reload swaps in another
        try:
            if generating:
                await ChatTap(engine.app, state.sessions, state.settings.always_include_usage, load)(
                    scope, receive, send)
            else:
                await NormalizeErrors(engine.app)(scope, receive, send)
        finally:
            load.inflight -= 1
            load.generating -= generating
            engine.active -= 1



def openai_error(status: int, raw: bytes) -> dict:
    """Any error body (vLLM's ``{"error": {..., "type": "BadRequestError", "code": 400}}``, FastAPI's
    ``{"detail": ...}``, plain text) as OpenAI's error object for that status."""
    data: Any = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(raw)
    message, param, code = None, None, None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        message, param = err.get("message"), err.get("param")
        if isinstance(param, str) and param.startswith("body."):  # FastAPI's location, not the parameter's name
            param = param[5:]
        code = err.get("code") if isinstance(err.get("code"), str) else None
    elif isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        message = detail if isinstance(detail, str) else json.dumps(detail)[:500]
    elif raw:
        message = raw.decode("utf-8", "replace")[:500]
    if status == 404 and param == "model":
        code = code or "model_not_found"
    default_codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 422: "invalid_value",
                     503: "engine_unavailable"}
    return errors.error_body(str(message or "error"), status, param=param, code=code or default_codes.get(status))


class NormalizeErrors:
    """Wrap an ASGI app so that every response with status ≥ 400 carries an OpenAI error body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        pending: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                pending["start"] = message
                return
            if "start" in pending and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                status = pending["start"]["status"]
                keep = [(k, v) for k, v in pending["start"].get("headers", [])
                        if k.lower() not in (b"content-length", b"content-type")]
                await send_json(send, status, openai_error(status, b"".join(chunks)), keep)
                return
            await send(message)

        await self.app(scope, receive, wrapped)


class ChatTap:
    """One generation request through vLLM: sessions, exact usage, OpenAI errors (see the module docstring)."""

    def __init__(self, app: Any, sessions: SessionStore, always_include_usage: bool, load: Load) -> None:
        self.app, self.sessions, self.always_include_usage, self.load = app, sessions, always_include_usage, load

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        raw = await read_body(receive)
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError) as err:
            await send_error(send, f"request body is not valid JSON: {err}", 400, code="invalid_json")
            return
        except RecursionError:  # nesting deeper than any request needs; the JSON parsers give up
            await send_error(send, "the request body nests too deeply", 400, code="invalid_json")
            return
        session = None
        client_usage = self.always_include_usage
        turn: list[dict] = []
        if isinstance(body, dict):
            try:
                where = lone_surrogate(body)
                if where is not None:  # no tokenizer, UTF-8 encoder or upstream can take one (the fuzz found it)
                    raise InvalidRequest(f"{where}: the text holds a lone UTF-16 surrogate, which is not valid "
                                         "Unicode; send UTF-8 text", param=where, code="invalid_unicode")
                where = huge_integer(body)
                if where is not None:
                    raise InvalidRequest(f"{where}: integers must be within the int64 range", param=where,
                                         code="invalid_value")
                given_so = body.get("structured_outputs")
                if given_so is not None and not isinstance(given_so, dict):  # vLLM 0.32 calls .get on it: a 500
                    raise InvalidRequest("structured_outputs must be an object", param="structured_outputs",
                                         code="invalid_type")
                session, turn = self._open_session(scope, body)
            except LlmshipError as err:
                await send_error(send, str(err), err.status, type_=err.type, param=err.param, code=err.code)
                return
            if body.get("stream") is True:
                given = body.get("stream_options")
                options: dict = given if isinstance(given, dict) else {}
                client_usage = client_usage or bool(options.get("include_usage"))
                body["stream_options"] = {**options, "include_usage": True}
            raw = json.dumps(body).encode()
        reply = _Reply(stream=isinstance(body, dict) and body.get("stream") is True, keep_usage=client_usage,
                       session_id=session.id if session else None)
        try:
            await NormalizeErrors(self.app)(scope, replay(raw, receive), reply.sender(send))
        finally:
            if reply.usage is not None:
                completion = int(reply.usage.get("completion_tokens") or 0)
                report_usage(reply.usage.get("prompt_tokens", 0), completion)
                self.load.generated_tokens_total += completion
            self.load.last_work_at = time.time()
            if session is not None:
                done = reply.status == 200 and reply.complete and not reply.failed
                self.sessions.end(session, turn + [{"role": "assistant", "content": reply.text}] if done else None)
            self.load.last_status = reply.status
            if reply.status and reply.status >= 500:
                self.load.errors_total += 1

    def _open_session(self, scope: Scope, body: dict) -> tuple[Any, list[dict]]:
        if "session_id" not in body:
            return None, []
        sid = body.pop("session_id")
        if sid is None:
            return None, []
        if scope.get("path") != CHAT_PATH:
            raise InvalidRequest("session_id is only accepted on /v1/chat/completions", param="session_id")
        if not isinstance(sid, str) or not SESSION_ID_RE.match(sid) or len(sid) > 128:
            raise InvalidRequest("session_id must be 1-128 characters of ASCII letters, digits and ._:@~+-",
                                 param="session_id", code="invalid_value")
        if body.get("n") not in (None, 1):
            raise InvalidRequest("session_id cannot be combined with n > 1", param="n")
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise InvalidRequest("messages must be a list", param="messages")
        session = self.sessions.begin(sid)
        history = list(session.messages)
        body["messages"] = history + messages
        return session, [m for m in messages if isinstance(m, dict)]


class _Reply:
    """Reads vLLM's answer on its way out: status, the assistant's text, usage; drops an unasked-for usage chunk."""

    def __init__(self, *, stream: bool, keep_usage: bool, session_id: str | None) -> None:
        self.stream, self.keep_usage, self.session_id = stream, keep_usage, session_id
        self.status: int | None = None
        self.usage: dict | None = None
        self.parts: list[str] = []
        self.complete = False
        self.failed = False
        self._buffer = b""
        self._json: list[bytes] = []
        self._headers: list = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def sender(self, send: Any) -> Any:
        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                headers = list(message.get("headers", []))
                if self.session_id:
                    headers.append((b"x-llmship-session-id", self.session_id.encode()))
                if self.status == 200 and not self.stream:  # the body is rewritten: its length changes
                    self._headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
                    return
                await send({**message, "headers": headers})
                return
            if message["type"] != "http.response.body" or self.status != 200:
                await send(message)
                return
            if self.stream:
                await self._stream_body(message, send)
            else:
                self._json.append(message.get("body", b""))
                if not message.get("more_body"):
                    raw = self._final_json(b"".join(self._json))
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [*self._headers, (b"content-length", str(len(raw)).encode())]})
                    await send({"type": "http.response.body", "body": raw})
        return wrapped

    def _final_json(self, raw: bytes) -> bytes:
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(data, dict):
            self.usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
            choices = data.get("choices") or []
            first = choices[0] if choices else {}
            message = first.get("message") or {}
            self.parts = [message.get("content") or first.get("text") or ""]
            self.complete = True
            if self.session_id:
                data["session_id"] = self.session_id
                return json.dumps(data).encode()
        return raw

    async def _stream_body(self, message: dict, send: Any) -> None:
        """Pass SSE events through as they come, except the usage-only chunk the client did not ask for."""
        self._buffer += message.get("body", b"")
        out: list[bytes] = []
        while b"\n\n" in self._buffer:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            kept = self._inspect(event)
            if kept is not None:
                out.append(kept + b"\n\n")
        more = message.get("more_body", False)
        if not more and self._buffer:
            out.append(self._buffer)
            self._buffer = b""
        await send({"type": "http.response.body", "body": b"".join(out), "more_body": more})

    def _inspect(self, event: bytes) -> bytes | None:
        """Record what the event says; return it (rewritten if it is an error), or None to drop it.

        Token chunks are parsed only when a session needs their text: outside sessions only the usage chunk, an
        error and ``[DONE]`` matter, and parsing every chunk's JSON would cost more than the token's decode on a
        fast model."""
        if self.session_id is None and b'"usage":{' not in event and b'"error"' not in event \
                and b"[DONE]" not in event:
            return event
        data = event.strip()
        if not data.startswith(b"data:"):
            return event
        payload = data[5:].strip()
        if payload == b"[DONE]":
            self.complete = True
            return event
        try:
            chunk = json.loads(payload)
        except ValueError:
            return event
        if not isinstance(chunk, dict):
            return event
        if isinstance(chunk.get("error"), dict):  # in-band, after the headers: OpenAI's shape like any error
            code = chunk["error"].get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            self.failed = True  # the turn failed: no session write
            return b"data: " + json.dumps(openai_error(status, json.dumps(chunk).encode())).encode()
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                delta = choice.get("delta") or {}
                self.parts.append(delta.get("content") or choice.get("text") or "")
        if chunk.get("choices") or self.keep_usage or "usage" not in chunk:
            return event
        return None
