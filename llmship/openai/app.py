"""The chat service's app: llmship's own routes in front of vLLM's OpenAI server.

vLLM owns the OpenAI protocol (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/tokenize``,
``/detokenize``, ``/v1/responses``, ``/metrics`` ...): every path this app does not route itself goes to the app
vLLM built around its engine (``llmship.openai.proxy.EngineRoutes``), which adds sessions, admission, exact
usage for the gateway and OpenAI-shaped errors. This app owns what vLLM does not have: ``/livez``, ``/readyz``
(503 until the engine is up and while it drains), ``/stat``, ``/v1/sessions/{id}``, ``/v1/embeddings`` (the
embedding service), the web chat page at ``/chat`` and ``POST /admin/reload`` (``swap_engine``: serve what the
registry alias names now, without a moment of not answering; ``llmship rollback`` calls it).

``create_app()`` returns the app before any engine exists, so a BentoML service can mount it at import time and
start vLLM in ``@bentoml.on_startup``: ``attach_engine`` then makes it answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from llmship.engine.vllm import ServedEngine
from llmship.errors import (
    AuthenticationError,
    Conflict,
    EngineUnavailable,
    InvalidRequest,
    LlmshipError,
    ModelNotFound,
    ServeError,
)
from llmship.gateway.settings import GatewaySettings
from llmship.openai import errors
from llmship.openai.admin import ADMIN_TOKEN_ENV, ADMIN_TOKEN_HEADER
from llmship.openai.headers import ResponseHeaders
from llmship.openai.limits import BodySizeLimit
from llmship.openai.protocol import SessionDeleted, SessionInfo
from llmship.openai.proxy import EngineRoutes, Load
from llmship.openai.routes import HostedTable, ModelRouter, load_route
from llmship.openai.sessions import SessionStore
from llmship.settings import env_overrides

log = logging.getLogger(__name__)


class ApiSettings(BaseModel):
    """Behaviour of the HTTP surface (env: ``LLMSHIP_<FIELD>`` in upper case)."""

    always_include_usage: bool = False  # like vLLM's --enable-force-include-usage
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_sessions: int = Field(default=1024, ge=1)
    session_ttl_s: float = Field(default=1800.0, gt=0)

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls.model_validate(env_overrides(cls.model_fields, "LLMSHIP_"))


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    app = FastAPI(title="llmship", description="OpenAI-compatible API: vLLM behind llmship's gateway")
    app.state.engine = None
    app.state.model_version = None
    app.state.embedder = None
    app.state.settings = settings
    app.state.sessions = SessionStore(settings.max_sessions, settings.session_ttl_s)
    app.state.load = Load()
    app.state.draining = False
    app.state.started = time.time()
    app.state.reloader = None  # set by a service that can swap its engine (the chat Bento with one worker)
    app.state.checker = None  # set by the same service: a deploy's engine check on a staged engine (/admin/check)
    app.state.discarder = None  # ... and what stops that engine when the deploy's gates fail (/admin/discard)
    app.state.hosted = HostedTable()  # hosted releases and fallback aliases (llmship.openai.routes)
    app.state.swap_lock = asyncio.Lock()
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ResponseHeaders)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        if request.app.state.engine is None:
            return errors.error_response("the model is still loading", 503, code="not_ready")
        if request.app.state.draining:
            return errors.error_response("the server is shutting down", 503, code="not_ready")
        if request.app.state.engine.death.dead:
            return errors.error_response("the engine has died; this worker is being replaced", 503,
                                         code="engine_dead")
        return JSONResponse({"status": "ready"})

    @app.get("/stat")
    async def stat(request: Request) -> dict:
        """Worker load for ``llmship stat``: slots, queue, totals (like byzerllm's ``stat``)."""
        engine = current(request)
        load: Load = request.app.state.load
        slots = engine.settings.max_num_seqs
        worker = {"pid": os.getpid(), "engine": "vllm", "accepting": not request.app.state.draining,
                  "max_batch": slots, "max_waiting": engine.settings.max_waiting,
                  "running": min(load.generating, slots), "waiting": max(0, load.generating - slots),
                  "in_flight": load.inflight, "requests_total": load.requests_total,
                  "rejected_total": load.rejected_total, "errors_total": load.errors_total,
                  "generated_tokens_total": load.generated_tokens_total, "last_work_at": load.last_work_at,
                  "engine_start_s": round(engine.started_s, 1), "uptime_s": round(time.time() - engine.created, 1)}
        table: HostedTable = request.app.state.hosted
        return {"model": engine.model_id, "version": engine.version, "backend": "vllm",
                "sessions": len(request.app.state.sessions), "workers": [worker],
                "hosted": [route.stat() for route in table.routes.values()], "fallbacks": table.fallbacks}

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        """vLLM's list (the served model, LoRA adapters), with ``root`` naming the registered version rather than
        the artifact path vLLM loaded it from."""
        return await _models(current(request), request.app.state.hosted)

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> dict:
        for card in (await _models(current(request), request.app.state.hosted))["data"]:
            if card["id"] == model_id:
                return card
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")

    @app.get("/v1/sessions/{session_id}")
    async def get_session(session_id: str, request: Request) -> SessionInfo:
        store: SessionStore = request.app.state.sessions
        s = store.get(session_id)
        return SessionInfo(id=s.id, messages=len(s.messages), created=int(s.created), last_used=int(s.last_used),
                           expires_at=int(store.expires_at(s)))

    @app.delete("/v1/sessions/{session_id}")
    async def delete_session(session_id: str, request: Request) -> SessionDeleted:
        request.app.state.sessions.delete(session_id)
        return SessionDeleted(id=session_id)

    @app.post("/admin/reload", include_in_schema=False)
    async def reload(request: Request) -> dict:
        """Serve what the registry alias names now: a new engine is started beside the running one, takes new
        requests once it is up, and the old one stops after its last request (``swap_engine``). Answers when
        the swap is done; a failed start leaves the running engine serving. Guarded by the service's own admin
        token (``llmship.serving.process`` writes it next to the server's state file), not by API keys."""
        _require_admin(request)
        try:
            asked = await request.json()
        except ValueError:
            asked = None
        reloader = request.app.state.reloader
        if reloader is None:  # one request reaches one worker: with several, neither an engine nor a table swaps
            raise Conflict("this service cannot swap its engine in place (it runs several workers); restart it",
                           code="reload_unavailable")
        if isinstance(asked, dict) and asked.get("hosted"):
            return await _reload_hosted(request.app, str(asked["hosted"]))

        async def swap() -> tuple[ServedEngine, ServedEngine]:
            before = current(request)
            return before, await reloader()

        before, after = await _engine_change(request, swap, "the new engine did not start")
        return {"version": after.version, "previous": before.version, "swapped": after is not before,
                "engine_start_s": round(after.started_s, 1) if after is not before and not after.staged else 0.0,
                "staged": after is not before and after.staged}

    @app.post("/admin/check", include_in_schema=False)
    async def check(request: Request) -> dict:
        """A deploy's engine check (``llmship.validate.engine_check.EngineCheckSpec`` in, its report out) on a
        candidate engine started beside the serving one and kept staged: the reload that follows a passing check
        serves that engine instead of starting another (``llmship.serving.staging``). Same admin token as
        ``/admin/reload``; a 409 tells the caller to check in its own process instead."""
        _require_admin(request)
        checker = request.app.state.checker
        if checker is None:
            raise Conflict("this service cannot stage an engine (it runs several workers)", code="check_unavailable")
        try:
            spec = await request.json()
        except ValueError:
            raise InvalidRequest("the body must be an engine check spec (JSON)") from None
        return await _engine_change(request, lambda: checker(spec), "the staged engine's check failed")

    @app.post("/admin/discard", include_in_schema=False)
    async def discard(request: Request) -> dict:
        """Stop the engine a check staged (a deploy whose gates failed): ``{"discarded": true|false}``."""
        _require_admin(request)
        discarder = request.app.state.discarder
        if discarder is None:
            raise Conflict("this service stages no engine (it runs several workers)", code="check_unavailable")
        async with request.app.state.swap_lock:
            return {"discarded": await discarder()}

    from llmship.openai.embeddings import embeddings_router

    app.include_router(embeddings_router())
    _webchat_routes(app)
    app.mount("/", ModelRouter(app, EngineRoutes(app)))  # type: ignore[arg-type]  # last: hosted models, then vLLM
    own_openapi = app.openapi

    def openapi() -> dict:
        """llmship's routes and, once the engine runs, vLLM's (``/docs`` shows the whole service)."""
        schema = own_openapi()
        engine = app.state.engine
        if engine is not None and not app.state.openapi_merged:
            theirs = engine.app.openapi()
            schema["paths"] = {**theirs.get("paths", {}), **schema.get("paths", {})}
            components = schema.setdefault("components", {})
            for kind, items in theirs.get("components", {}).items():
                components[kind] = {**items, **components.get(kind, {})}
            app.state.openapi_merged = True
        return schema

    app.state.openapi_merged = False
    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _engine_change(request: Request, work: Callable[[], Awaitable[Any]], failed: str) -> Any:
    """Run ``work`` (a reload's swap, a staged engine check) as the only engine change: 503 while the server
    drains, 409 while another runs, else under the swap lock; an unexpected failure becomes one ``ServeError`` line
    starting with ``failed`` (the caller must learn why, not "internal error")."""
    state = request.app.state
    if state.draining:
        raise EngineUnavailable("the server is shutting down")
    if state.swap_lock.locked():
        raise Conflict("a reload or an engine check is already running", code="reload_in_progress")
    async with state.swap_lock:
        try:
            return await work()
        except LlmshipError:
            raise
        except Exception as err:
            log.exception(failed)
            raise ServeError(f"{failed}: {type(err).__name__}: {err}") from err


def _require_admin(request: Request) -> None:
    """The service's own admin token (not an API key), compared in constant time; no token set: no admin routes."""
    expected = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not expected:
        raise ModelNotFound(f"Not found: {request.url.path}", code="not_found")
    given = request.headers.get(ADMIN_TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationError("a valid admin token is required (x-llmship-admin-token)",
                                  code="invalid_admin_token")


async def _models(engine: ServedEngine, table: HostedTable | None = None) -> dict:
    listed = (await engine.app.state.openai_serving_models.show_available_models()).model_dump()
    for card in listed["data"]:
        if card.get("id") == engine.model_id:
            card["root"] = engine.version
            card["owned_by"] = "llmship"
    created = int(engine.created)
    for route in (table.routes.values() if table else ()):
        listed["data"].append({"id": route.name, "object": "model", "created": created, "owned_by": route.spec.provider,
                               "root": route.version, "parent": None, "max_model_len": None, "permission": []})
    for alias, targets in (table.fallbacks.items() if table else ()):
        listed["data"].append({"id": alias, "object": "model", "created": created, "owned_by": "llmship",
                               "root": " > ".join(targets), "parent": None, "max_model_len": None, "permission": []})
    return listed


async def _reload_hosted(app: FastAPI, name: str) -> dict:
    """Serve what ``models:/<name>@champion`` names now as the hosted release ``name`` (added if new): the table
    entry is swapped; requests already running finish on the old one."""
    table: HostedTable = app.state.hosted
    async with app.state.swap_lock:
        before = table.routes.get(name)
        try:
            route = await asyncio.to_thread(load_route, name)
        except LlmshipError:
            raise
        except Exception as err:
            raise ServeError(f"cannot load the hosted release {name}: {type(err).__name__}: {err}") from err
        table.replace(route)
    log.info("hosted %s now serves %s (was %s)", name, route.version, before.version if before else "not served")
    key = route.spec.api_key_env
    return {"hosted": name, "version": route.version, "previous": before.version if before else None,
            "swapped": before is None or before.version != route.version,
            "key_env": key, "key_present": not key or bool(os.environ.get(key))}


def current(request: Request) -> ServedEngine:
    engine = request.app.state.engine
    if engine is None:
        raise EngineUnavailable("the model is still loading")
    return engine


def attach_engine(app: FastAPI, engine: ServedEngine) -> None:
    """Start answering with ``engine`` (after ``llmship.engine.vllm.start_engine``)."""
    app.state.engine = engine
    app.state.model_version = engine.version


async def swap_engine(app: FastAPI, start: Callable[[], Awaitable[ServedEngine]], drain_timeout_s: float = 30.0,
                      ) -> ServedEngine:
    """Blue/green inside one worker: start the new engine while the old one keeps answering, route new requests
    to it, then stop the old one once the requests it was answering are done (or ``drain_timeout_s`` passed).

    Why in the worker and not a second server: vLLM's start-up (seconds eager, minutes with a cold compile) would
    otherwise be a window without answers on the service's port, which a second ``bentoml serve`` cannot share.
    The cost is memory: for the start-up, two engines (weights and KV cache) live side by side. If the new one
    fails to start, the old one was never touched and the error propagates."""
    old = app.state.engine
    new = await start()
    attach_engine(app, new)
    if old is not None:
        deadline = time.monotonic() + drain_timeout_s
        while old.active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if old.active:
            log.warning("stopping the replaced engine (%s) with %d requests still running", old.version, old.active)
        await old.stop()
    log.info("now serving %s (engine start %.1f s; replaced %s)", new.version, new.started_s,
             old.version if old else "nothing")
    return new


async def drain(app: FastAPI, timeout_s: float = 30.0) -> int:
    """Refuse new work (503, /readyz red) and wait up to ``timeout_s`` for in-flight requests; returns how many
    were still running when it gave up."""
    app.state.draining = True
    deadline = time.monotonic() + timeout_s
    while app.state.load.inflight and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return int(app.state.load.inflight)


# ---------------------------------------------------------------- the web chat page
WEBCHAT_DIR = Path(__file__).resolve().parent.parent / "webchat"
WEBCHAT_ASSETS = {"chat.js": "text/javascript; charset=utf-8", "chat.css": "text/css; charset=utf-8"}
CHAT_RAG_URL_ENV = "LLMSHIP_CHAT_RAG_URL"  # the RAG service the page may ask (its CORS must allow this origin)


def _webchat_routes(app: FastAPI) -> None:
    """``/chat`` (the page), ``/chat/static/<file>`` (its own files only) and ``/chat/config`` (what the page
    needs to know). The page holds no data: the gateway lets it load without a key, and the page sends the key
    the user types with every API call."""

    @app.get("/chat", include_in_schema=False)
    async def chat_page() -> Response:
        rag = _rag_url()
        origin = _origin(rag) if rag else None  # the page may fetch from here and from the RAG service only
        connect = f"'self' {origin}" if origin else "'self'"
        csp = (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return Response((WEBCHAT_DIR / "index.html").read_bytes(), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    @app.get("/chat/static/{name}", include_in_schema=False)
    async def chat_asset(name: str) -> Response:
        if name not in WEBCHAT_ASSETS:
            return errors.error_response(f"Not found: /chat/static/{name}", 404, code="not_found")
        return Response((WEBCHAT_DIR / name).read_bytes(), media_type=WEBCHAT_ASSETS[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    @app.get("/chat/config", include_in_schema=False)
    async def chat_config() -> dict:
        # The gateway in front of this app reads the same environment (an invalid one stops the service at start).
        return {"rag_url": _rag_url(), "auth": GatewaySettings.from_env().auth}


def _rag_url() -> str | None:
    """The RAG service's base URL (``http://host:3001``; a trailing ``/v1`` is dropped: the page adds it)."""
    url = (os.environ.get(CHAT_RAG_URL_ENV) or "").strip().rstrip("/")
    return url.removesuffix("/v1") or None


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None
