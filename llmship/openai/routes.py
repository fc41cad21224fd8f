"""Which model name goes where inside the chat service: the vLLM engine, a hosted release, or a fallback alias.

``HostedTable`` is read at start-up from ``LLMSHIP_HOSTED`` (registered names, each served at ``@champion``) and
``LLMSHIP_FALLBACKS`` (``{"alias": ["self-hosted", "hosted", ...]}``); ``POST /admin/reload`` with
``{"hosted": name}`` swaps one entry for what its alias names now (a hosted deploy, a rollback), in place.

``ModelRouter`` sits in front of the engine's routes. For a chat or completions request it peeks at ``model``:

- a hosted release: that release's ``HostedApp``, inside the same ``ChatTap`` as the engine (sessions, exact
  usage for the gateway, OpenAI-shaped errors), answered with ``x-llmship-model-version: <name>/<version>``;
- an alias: its targets in order. A target that answers 503/504, or has not sent its first token (streams) or
  its answer (non-streaming) within ``fallback_timeout_s``, is abandoned (the engine sees a client disconnect
  and aborts) and the next one is asked; the last target's answer is the answer, whatever it is. Errors a
  client caused (4xx) are answered at once: the next target would refuse them too;
- anything else: the engine, untouched (no parsing when the table is empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from llmship.asgi import read_body, replay, send_error
from llmship.errors import ServeError
from llmship.hosted.app import HostedApp
from llmship.hosted.spec import HostedModel, load_hosted
from llmship.openai.proxy import ChatTap, Load

log = logging.getLogger(__name__)
Scope = dict[str, Any]
ROUTED_PATHS = ("/v1/chat/completions", "/v1/completions")
FALLBACK_STATUSES = (503, 504)
VERSION_HEADER = b"x-llmship-model-version"


@dataclass
class HostedRoute:
    name: str
    version: str  # name/version
    spec: HostedModel
    app: HostedApp
    load: Load = field(default_factory=Load)

    def stat(self) -> dict[str, Any]:
        return {"model": self.name, "version": self.version, "provider": self.spec.provider,
                "base_url": self.spec.base_url, "upstream_model": self.spec.model, "in_flight": self.load.inflight,
                "requests_total": self.load.requests_total, "errors_total": self.load.errors_total,
                "generated_tokens_total": self.load.generated_tokens_total, "last_status": self.load.last_status}


def load_route(name: str, tracking_uri: str | None = None) -> HostedRoute:
    """``models:/<name>@champion`` as a route (blocking: the registry; call it in a thread from the loop)."""
    from llmship.registry import ModelRegistry

    registry = ModelRegistry(tracking_uri)
    ref, folder = registry.resolve(f"models:/{name}@champion")
    if ref.tags.get("serve_backend") != "hosted":
        raise ServeError(f"{name} version {ref.version} is not a hosted model (serve_backend="
                         f"{ref.tags.get('serve_backend')}); serve.hosted names hosted releases only")
    spec = load_hosted(folder)
    return HostedRoute(name=name, version=f"{name}/{ref.version}", spec=spec, app=HostedApp(spec))


@dataclass
class HostedTable:
    routes: dict[str, HostedRoute] = field(default_factory=dict)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    fallback_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HostedTable:
        env = os.environ if environ is None else environ
        names = [n.strip() for n in (env.get("LLMSHIP_HOSTED") or "").split(",") if n.strip()]
        try:
            fallbacks = json.loads(env.get("LLMSHIP_FALLBACKS") or "{}")
        except ValueError as err:
            raise ServeError(f"LLMSHIP_FALLBACKS is not JSON: {err}") from None
        if not isinstance(fallbacks, dict) or not all(isinstance(v, list) and v for v in fallbacks.values()):
            raise ServeError('LLMSHIP_FALLBACKS must map each alias to a list of model names')
        table = cls(fallbacks={str(k): [str(x) for x in v] for k, v in fallbacks.items()},
                    fallback_timeout_s=float(env.get("LLMSHIP_FALLBACK_TIMEOUT_S") or 30.0))
        for name in names:
            table.routes[name] = load_route(name)
        return table

    @property
    def empty(self) -> bool:
        return not self.routes and not self.fallbacks

    def check_targets(self, engine_model: str) -> None:
        """Every alias target is the engine's model or a hosted release this service serves."""
        for alias, targets in self.fallbacks.items():
            if alias == engine_model or alias in self.routes:
                raise ServeError(f"serve.fallbacks.{alias}: the alias is already a served model's name")
            unknown = [t for t in targets if t != engine_model and t not in self.routes]
            if unknown:
                raise ServeError(f"serve.fallbacks.{alias} names {', '.join(unknown)}, which this service does not "
                                 f"serve (it serves {', '.join([engine_model, *self.routes])}; list hosted releases "
                                 "in serve.hosted)")

    def replace(self, route: HostedRoute) -> HostedRoute | None:
        old = self.routes.get(route.name)
        self.routes[route.name] = route
        if old is not None:
            asyncio.ensure_future(_close_when_idle(old))
        return old

    async def aclose(self) -> None:
        for route in self.routes.values():
            await route.app.aclose()


async def _close_when_idle(route: HostedRoute, timeout_s: float = 600.0) -> None:
    """The replaced route's client closes after its last request (or ``timeout_s``)."""
    waited = 0.0
    while route.load.inflight and waited < timeout_s:
        await asyncio.sleep(0.5)
        waited += 0.5
    await route.app.aclose()


def _with_version(send: Any, version: str) -> Any:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != VERSION_HEADER]
            message = {**message, "headers": [*headers, (VERSION_HEADER, version.encode())]}
        await send(message)
    return wrapped


class ModelRouter:
    """The ASGI app mounted behind llmship's routes: hosted releases and aliases here, the rest to ``engine``."""

    def __init__(self, owner: Any, engine: Any) -> None:
        self.owner, self.engine = owner, engine

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        table: HostedTable | None = getattr(self.owner.state, "hosted", None)
        if (scope["type"] != "http" or table is None or table.empty or scope.get("method") != "POST"
                or scope.get("path") not in ROUTED_PATHS):
            await self.engine(scope, receive, send)
            return
        raw = await read_body(receive)
        body = _peek_body(raw)
        model = body.get("model") if body is not None else None
        if model in table.routes:
            await self._hosted(table.routes[model], scope, replay(raw, receive), send)
        elif model in table.fallbacks and body is not None:
            await self._fallback(table, model, scope, body, receive, send)
        else:
            await self.engine(scope, replay(raw, receive), send)

    async def _hosted(self, route: HostedRoute, scope: Scope, receive: Any, send: Any) -> None:
        state = self.owner.state
        route.load.inflight += 1
        route.load.requests_total += 1
        route.load.generating += 1
        try:
            await ChatTap(route.app, state.sessions, state.settings.always_include_usage, route.load)(
                scope, receive, _with_version(send, route.version))
        finally:
            route.load.inflight -= 1
            route.load.generating -= 1

    def _target(self, table: HostedTable, name: str) -> Any | None:
        """The ASGI app answering as ``name`` (each sets its own version header: ``_hosted`` here, the engine's
        through ``ResponseHeaders``), or None when nothing here serves it now."""
        if name in table.routes:
            route = table.routes[name]
            return lambda s, r, w: self._hosted(route, s, r, w)
        engine = self.owner.state.engine
        if engine is not None and engine.model_id == name:
            return self.engine
        return None

    async def _fallback(self, table: HostedTable, alias: str, scope: Scope, body: dict, receive: Any,
                        send: Any) -> None:
        """Each target in turn, under its own name; the body was parsed once and is re-encoded per target."""
        targets = table.fallbacks[alias]
        stream = body.get("stream") is True
        tried: list[str] = []
        for i, name in enumerate(targets):
            app = self._target(table, name)
            if app is None:  # the engine is not up yet (or was named wrong): the next target
                tried.append(f"{name}: not served now")
                continue
            renamed = json.dumps({**body, "model": name}).encode()
            if i == len(targets) - 1:
                await app(scope, replay(renamed, receive), send)
                return
            if await _attempt(app, scope, renamed, stream, receive, send, table.fallback_timeout_s):
                return
            tried.append(name)
            log.info("fallback %s: %s did not answer in time or was unavailable; trying the next", alias, name)

        await send_error(send, f"no model behind {alias!r} can answer now ({'; '.join(tried)})", 503,
                         code="engine_unavailable")


async def _attempt(app: Any, scope: Scope, body: bytes, stream: bool, receive: Any, send: Any,
                   timeout_s: float) -> bool:
    """Run ``app`` holding its answer back until it commits: a first streamed token, a complete non-streaming
    answer, or a client error. False (nothing sent to the client) when it answered 503/504, failed, or did not
    commit within ``timeout_s``; the abandoned request sees a client disconnect."""
    held: list[dict] = []
    verdict: dict[str, str] = {}
    decided = asyncio.Event()
    abandon = asyncio.Event()

    async def commit() -> None:
        verdict["v"] = "commit"
        for message in held:
            await send(message)
        held.clear()
        decided.set()

    async def capture(message: dict) -> None:
        v = verdict.get("v")
        if v == "commit":
            await send(message)
            return
        if v == "drop":
            return
        if message["type"] == "http.response.start":
            if message["status"] in FALLBACK_STATUSES:
                verdict["v"] = "drop"
                decided.set()
                return
            held.append(message)
            if message["status"] != 200 or not stream:
                await commit()
            return
        held.append(message)
        if message.get("body") or not message.get("more_body"):
            await commit()

    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        client = asyncio.ensure_future(receive())
        gone = asyncio.ensure_future(abandon.wait())
        try:
            done, _ = await asyncio.wait({client, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the app cancels its own listener: no future left pending
            client.cancel()
            gone.cancel()
        return client.result() if client in done else {"type": "http.disconnect"}

    task = asyncio.ensure_future(app(scope, replay, capture))
    waiter = asyncio.ensure_future(decided.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if verdict.get("v") == "commit":
        await task
        return True
    verdict["v"] = "drop"
    abandon.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), 5.0)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    except Exception:  # the abandoned attempt's own failure: the next target answers
        log.exception("abandoned fallback attempt failed")
    return False


def _peek_body(raw: bytes) -> dict | None:
    """The request's JSON object when it names a model as a string; None otherwise (the engine then answers the
    malformed request in its own words)."""
    if b'"model"' not in raw:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) and isinstance(body.get("model"), str) else None
