"""The gateway: one pure-ASGI middleware in front of a service — keys, limits, request caps, audit, CORS.

What users otherwise put LiteLLM's proxy in front of vLLM for, in the serving process itself: a BentoML service
adds it with ``add_asgi_middleware`` (so BentoML's own routes — ``/metrics``, ``/docs.json``, the docs UI — are
behind it too), a bare FastAPI app with ``add_middleware``. Per request:

1. ``/livez``, ``/readyz``, ``/healthz`` pass untouched (probes carry no key); docs and ``/metrics`` as configured;
   ``/admin/*`` without a key (the app checks its own admin token there).
2. With ``auth``, ``Authorization: Bearer <key>`` is checked against the key store: 401 when missing, unknown,
   revoked or expired.
3. A JSON body (read once, at most ``max_body_bytes``: 413 beyond) is looked at for ``model`` (403 when the key
   may not use it), ``messages`` (``max_messages``), the prompt's tokens (``max_prompt_tokens``) and
   ``max_tokens`` (the key's cap: 400 above it, and set to it when the request names none).
4. The key's limits admit the request or answer 429 with ``Retry-After``; every response of a limited key
   carries ``x-ratelimit-*`` headers like OpenAI's.
5. When the response is over, the reservation is settled with the usage the app reported
   (``llmship.gateway.usage``), the key's usage is counted, the request is counted in
   ``llmship:gateway_requests_total{service, key_name, code}`` (``llmship.gateway.metrics``), and one audit line
   is written.

Pure ASGI rather than ``BaseHTTPMiddleware`` so a stream is passed through untouched and a client's disconnect
still reaches the app (which frees the request's batch slot at once).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from llmship.asgi import replay
from llmship.errors import (
    AuthenticationError,
    EngineUnavailable,
    InvalidRequest,
    LlmshipError,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    error_body,
)
from llmship.gateway.audit import AuditLog
from llmship.gateway.keys import ApiKey, KeyStore
from llmship.gateway.limiter import Admission, KeyLimiter
from llmship.gateway.metrics import count_request
from llmship.gateway.settings import GatewaySettings
from llmship.gateway.usage import Usage, current

log = logging.getLogger(__name__)

PROBES = frozenset({"/livez", "/readyz", "/healthz"})
DOCS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/docs.json", "/schema.json", "/"})
METRICS = "/metrics"
# The web chat page and its static files: the page holds no data and asks the user for a key, which it then
# sends with every API call it makes, so loading it needs none.
CHAT_PAGE = "/chat"
# The service's admin routes (``POST /admin/reload``) check their own token, held by the operator's machine and
# not a user's API key: ``llmship rollback`` must work with auth on, and no API key may reload the model.
ADMIN = "/admin/"
RATE_HEADERS = ["retry-after", "x-request-id", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens"]

Scope = dict[str, Any]
Tokenizer = Callable[[str], int | None]


class _Disconnected(Exception):
    """The client went away while sending its body: nothing to answer."""


class RequestFacts:
    """What the gateway needs from an OpenAI-style JSON body (every field optional, every type checked)."""

    def __init__(self, payload: Any) -> None:
        body = payload if isinstance(payload, dict) else {}
        self.payload = payload if isinstance(payload, dict) else None  # the parsed body, for a rewrite
        self._tokens: int | None = None
        self.model = body.get("model") if isinstance(body.get("model"), str) else None
        messages = body.get("messages")
        self.messages = messages if isinstance(messages, list) else None
        self.stream = body.get("stream") is True
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        self.max_tokens = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None
        n = body.get("n")
        self.n = n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128 else 1
        self.texts: list[str] = []
        self.token_ids = 0
        for m in self.messages or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                self.texts.append(content)
            elif isinstance(content, list):
                self.texts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        for name in ("prompt", "input"):
            self._add(body.get(name))
        self.generates = self.messages is not None or "prompt" in body

    def _add(self, value: Any) -> None:
        if isinstance(value, str):
            self.texts.append(value)
        elif isinstance(value, list):
            if value and all(isinstance(v, int) for v in value):
                self.token_ids += len(value)
            else:
                for item in value:
                    self._add(item)

    def prompt_tokens(self, tokenizer: Tokenizer | None) -> int:
        """The prompt's tokens: the service's tokenizer when it has one, else OpenAI's estimate (4 chars a token).
        Counted once per request (the prompt cap and the token reservation both ask)."""
        if self._tokens is None:
            total = self.token_ids
            for text in self.texts:
                counted = tokenizer(text) if tokenizer is not None else None
                total += counted if counted is not None else math.ceil(len(text) / 4)
            self._tokens = total
        return self._tokens


class Gateway:
    """ASGI middleware; ``settings`` default to ``GatewaySettings.from_env()``, ``tokenizer`` to an estimate."""

    def __init__(self, app: Any, settings: GatewaySettings | None = None, store: KeyStore | None = None,
                 tokenizer: Tokenizer | None = None, service: str = "llmship") -> None:
        self.settings = settings = settings or GatewaySettings.from_env()
        self.inner = app
        self.service = service
        self.tokenizer = tokenizer
        self.store = store if store is not None else (KeyStore(settings.keys_path()) if settings.auth else None)
        self.limiter = KeyLimiter(settings.limits_storage)
        self.audit = AuditLog(settings.audit_file()) if settings.audit else None
        self.app: Any = self._guard
        if settings.cors_origins:
            self.app = CORSMiddleware(cast(ASGIApp, self._guard), allow_origins=settings.cors_origins, allow_methods=["*"],
                                      allow_headers=["*"], expose_headers=RATE_HEADERS, max_age=600)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and self.settings.auth:
            await send({"type": "websocket.close", "code": 1008})  # no route here takes one; none gets past a key
            return
        if scope["type"] != "http":
            await self.inner(scope, receive, send)  # lifespan
            return
        await self.app(scope, receive, send)

    def _public(self, path: str) -> bool:
        return (path in DOCS and self.settings.public_docs or path == METRICS and self.settings.public_metrics
                or path == CHAT_PAGE or path.startswith((CHAT_PAGE + "/", ADMIN)))

    async def _guard(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if path in PROBES:
            await self._probe(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        state: dict[str, Any] = {"status": 499, "request_id": (headers.get(b"x-request-id") or b"").decode("latin-1")}
        key: ApiKey | None = None
        facts = RequestFacts(None)
        admission: Admission | None = None
        usage = Usage()
        token = current.set(usage)
        try:
            if path in DOCS and not self.settings.docs:
                raise _NotFound(f"Not found: {path}")
            if self.settings.auth and not self._public(path):
                assert self.store is not None  # created whenever auth is on
                key = self.store.verify(_bearer(headers))
            body: bytes | None = None
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                body = await self._read(headers, receive)
                facts = RequestFacts(_json(body))
                scope, body = self._check(scope, body, facts, key)
            if key is not None and (key.rpm or key.tpm or key.max_parallel):
                admission = await self.limiter.admit(key, self._reserve(facts, key))
            await self.inner(scope, replay(body, receive) if body is not None else receive,
                             self._sender(send, state, admission))
        except _Disconnected:
            pass
        except LlmshipError as err:
            if state.get("started"):
                raise
            state["status"], state["error"] = err.status, err.code
            await _send_error(send, err, admission.headers if admission else None, state)
        finally:
            current.reset(token)
            used = usage.total if usage.reported else (0 if state["status"] >= 400 else None)
            if admission is not None:
                await self.limiter.settle(admission, used)
            if key is not None and self.store is not None:
                try:
                    self.store.record_usage(key.id, used or 0)
                except Exception:
                    log.exception("could not record key usage")
            count_request(self.service, key.name if key else None, state["status"])
            self._audit(scope, state, key, facts, usage, started)

    async def _probe(self, scope: Scope, receive: Any, send: Any) -> None:
        """A probe always gets an answer: a 503 when what answers it below fails before responding.

        BentoML's own ``/readyz`` asks each dependency whether it is ready, and its client turns only a timeout
        into "not ready": a dependency that is still starting and refuses or drops the connection raises. BentoML's
        timeout middleware, which sits above this one, waits for a response start and never looks at the exception,
        so each such probe hung for ``traffic.timeout`` (600 s on the RAG service). Uvicorn waits for hung requests
        when it stops: ``llmship serve stop`` then took 30 s and ended in SIGKILL for ten minutes after every
        start of a service with dependencies."""
        state: dict[str, Any] = {"status": 499, "request_id": ""}
        try:
            await self.inner(scope, receive, self._sender(send, state, None))
        except Exception as err:  # any failure below is "not ready", said in the body
            if state.get("started"):
                raise
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.debug("probe %s failed below the gateway: %s", scope.get("path"), reason)
            await _send_error(send, EngineUnavailable(f"not ready: {reason}", code="not_ready"),
                              [(b"retry-after", b"1")], state)

    async def _read(self, headers: dict[bytes, bytes], receive: Any) -> bytes:
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await drain_body(receive, int(length))
            raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check(self, scope: Scope, body: bytes, facts: RequestFacts, key: ApiKey | None) -> tuple[Scope, bytes]:
        """The request caps and the key's model and ``max_tokens`` rules; may return a rewritten body."""
        s = self.settings
        if key is not None and facts.model is not None and not key.allows(facts.model):
            raise PermissionDenied(f"The API key {key.name!r} may not use the model {facts.model!r}", param="model")
        if facts.messages is not None and len(facts.messages) > s.max_messages:
            raise InvalidRequest(f"too many messages: {len(facts.messages)} (at most {s.max_messages})",
                                 param="messages", code="too_many_messages")
        if s.max_prompt_tokens is not None:
            tokens = facts.prompt_tokens(self.tokenizer)
            if tokens > s.max_prompt_tokens:
                raise InvalidRequest(f"the prompt has {tokens} tokens, more than the limit of {s.max_prompt_tokens}",
                                     param="messages" if facts.messages is not None else "prompt",
                                     code="prompt_too_long")
        cap = key.max_tokens if key is not None else None
        if key is not None and cap is not None and scope.get("path", "").endswith("/completions"):
            if facts.max_tokens is not None and facts.max_tokens > cap:
                raise InvalidRequest(f"max_tokens is {facts.max_tokens}; the key {key.name!r} allows at most {cap}",
                                     param="max_tokens", code="max_tokens_exceeded")
            if facts.max_tokens is None and facts.payload is not None:
                facts.payload["max_tokens"] = facts.max_tokens = cap
                body = json.dumps(facts.payload).encode()
                scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers") or []
                                              if k != b"content-length"] +
                         [(b"content-length", str(len(body)).encode())]}
        return scope, body

    def _reserve(self, facts: RequestFacts, key: ApiKey) -> int:
        """Tokens to hold until the request ends: the prompt, plus ``max_tokens`` × ``n`` for a generation."""
        if key.tpm is None:
            return 0
        completion = (facts.max_tokens or self.settings.default_max_tokens) * facts.n if facts.generates else 0
        return facts.prompt_tokens(self.tokenizer) + completion

    def _sender(self, send: Any, state: dict[str, Any], admission: Admission | None) -> Any:
        extra = admission.headers if admission is not None else []

        async def sender(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-request-id":
                        state["request_id"] = value.decode("latin-1")
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sender

    def _audit(self, scope: Scope, state: dict[str, Any], key: ApiKey | None, facts: RequestFacts, usage: Usage,
               started: float) -> None:
        if self.audit is None:
            return
        record: dict[str, Any] = {
            "service": self.service, "request_id": state["request_id"] or None, "method": scope.get("method"),
            "path": scope.get("path"), "key": key.name if key else None, "key_id": key.id if key else None,
            "model": facts.model, "stream": facts.stream, "status": state["status"], "error": state.get("error"),
            "prompt_tokens": usage.prompt_tokens if usage.reported else None,
            "completion_tokens": usage.completion_tokens if usage.reported else None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "client": (scope.get("client") or [None])[0],
        }
        if self.settings.audit_prompts and (facts.messages is not None or facts.texts):
            record["prompt"] = facts.messages if facts.messages is not None else facts.texts
        try:
            self.audit.write(**record)
        except Exception:
            log.exception("could not write the audit line")


class _NotFound(LlmshipError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None  # the app answers 400 for it, in its own words


async def _send_error(send: Any, err: LlmshipError, extra: list[tuple[bytes, bytes]] | None,
                      state: dict[str, Any]) -> None:
    payload = json.dumps(error_body(str(err), err.status, type_=err.type, param=err.param, code=err.code)).encode()
    request_id = state["request_id"] or uuid.uuid4().hex
    state["request_id"] = request_id
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               (b"x-request-id", request_id.encode("latin-1"))]
    if isinstance(err, RateLimited):
        headers += [(b"retry-after", str(err.retry_after).encode()), *err.headers]
    elif extra:
        headers += extra
    if isinstance(err, AuthenticationError):
        headers.append((b"www-authenticate", b"Bearer"))
    try:
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
    except OSError:
        pass  # the client is gone


DRAIN_LIMIT = 64 * 1024 * 1024


async def drain_body(receive: Any, length: int) -> None:
    """Read and drop a refused body (up to 64 MiB), so the client that is still sending it reads the 413 instead
    of a connection reset (a server that answers and closes mid-upload resets the connection)."""
    if length > DRAIN_LIMIT:
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
