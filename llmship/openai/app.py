"""The FastAPI application: the OpenAI-compatible routes, health, metrics and stats.

``create_app()`` returns an app whose runtime is attached later
(``app.state.runtime``), so a BentoML service can mount it at import time and
load the model in its constructor; until then generation routes answer 503.
``app.state.embedder`` (optional) serves ``/v1/embeddings`` the same way.
``/chat`` serves the web chat page (``llmship/webchat``; see ``_webchat_routes``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from llmship.config import env_overrides
from llmship.engine.base import Completion, SamplingParams, StepOutput, TokenLogprob
from llmship.errors import EngineUnavailable, InvalidRequest, LlmshipError, ModelNotFound
from llmship.gateway.settings import GatewaySettings
from llmship.gateway.usage import report_usage
from llmship.openai import errors
from llmship.openai.limits import BodySizeLimit
from llmship.openai.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChoiceMessage,
    ChunkChoice,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    Delta,
    ModelCard,
    ModelList,
    SessionDeleted,
    SessionInfo,
    TextCompletion,
    TokenLogprobEntry,
    TopLogprob,
    Usage,
)
from llmship.openai.runtime import Runtime, TokenStream
from llmship.openai.sessions import SessionStore


class ApiSettings(BaseModel):
    """Behaviour of the HTTP surface (env: ``LLMSHIP_<FIELD>`` in upper case)."""

    default_max_tokens: int = Field(default=256, ge=1)
    always_include_usage: bool = False  # like vLLM's --enable-force-include-usage
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_sessions: int = Field(default=1024, ge=1)
    session_ttl_s: float = Field(default=1800.0, gt=0)

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls.model_validate(env_overrides(cls.model_fields, "LLMSHIP_"))


def create_app(runtime: Runtime | None = None, default_max_tokens: int | None = None,
               settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    if default_max_tokens is not None:
        settings = settings.model_copy(update={"default_max_tokens": default_max_tokens})
    app = FastAPI(title="llmship", description="OpenAI-compatible API served by llmship")
    app.state.runtime = runtime
    app.state.embedder = None
    app.state.settings = settings
    app.state.sessions = SessionStore(settings.max_sessions, settings.session_ttl_s)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ResponseHeaders)

    def current(request: Request) -> Runtime:
        rt = request.app.state.runtime
        if rt is None:
            raise EngineUnavailable("the model is still loading")
        return rt

    def check_model(rt: Runtime, model: str) -> None:
        if model != rt.served.model_id:
            raise ModelNotFound(f"The model '{model}' does not exist; this server serves '{rt.served.model_id}'",
                                param="model")

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        rt = request.app.state.runtime
        if rt is None:
            return errors.error_response("the model is still loading", 503, code="not_ready")
        if not rt.stats().accepting:
            return errors.error_response("the server is shutting down", 503, code="not_ready")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        rt = current(request)
        return Response(rt.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/stat")
    async def stat(request: Request) -> dict:
        """Worker load for ``llmship stat``: slots, queue, totals, last work (like byzerllm's ``stat``)."""
        rt = current(request)
        worker = rt.stats().model_dump()
        return {"model": rt.served.model_id, "version": rt.served.version, "backend": rt.served.backend,
                "sessions": len(request.app.state.sessions), "workers": [worker]}

    @app.get("/v1/models")
    async def models(request: Request) -> ModelList:
        rt = current(request)
        return ModelList(data=[_card(rt)])

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> ModelCard:
        rt = current(request)
        check_model(rt, model_id)
        return _card(rt)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        rt = current(request)
        check_model(rt, body.model)
        if body.session_id and body.n > 1:
            raise InvalidRequest("session_id cannot be combined with n > 1", param="n")
        engine = rt.served.engine
        turn = [m.as_template_dict() for m in body.messages]
        store: SessionStore = request.app.state.sessions
        session = store.begin(body.session_id) if body.session_id else None
        try:
            history = list(session.messages) if session else []
            prompt = engine.apply_chat_template(history + turn)
            max_tokens = body.max_completion_tokens or body.max_tokens or _default_max(rt, settings, len(prompt))
            params = _params(body, max_tokens, logprobs=body.logprobs, top_logprobs=body.top_logprobs or 0)
            engine.check_budget(len(prompt), max_tokens)
            streams = _submit(rt, [prompt], params, body.n)
        except BaseException:
            if session:
                store.end(session, None)
            raise

        def remember(text: str | None) -> None:
            """Keep the turn and its reply in the session; a failed or cancelled turn leaves no trace."""
            if session:
                store.end(session, turn + [{"role": "assistant", "content": text}] if text is not None else None)

        headers = {"x-llmship-session-id": session.id} if session else {}
        if body.stream:
            usage = settings.always_include_usage or bool(body.stream_options and body.stream_options.include_usage)
            events = _chat_sse(rt, body.model, len(prompt), streams, usage, body.logprobs, remember)
            return _sse_response(events, headers)
        try:
            outs = await _collect(streams)
        except BaseException:
            remember(None)
            raise
        remember(outs[0].text)
        report_usage(len(prompt), sum(o.completion_tokens for o in outs))
        completion = ChatCompletion(
            model=body.model,
            choices=[Choice(index=i, message=ChoiceMessage(content=out.text), finish_reason=out.finish_reason,
                            logprobs=_chat_logprobs(rt, out.logprobs) if body.logprobs else None)
                     for i, out in enumerate(outs)],
            usage=_usage(len(prompt), outs),
            session_id=session.id if session else None,
        )
        return JSONResponse(completion.model_dump(exclude={"session_id"} if session is None else None),
                            headers=headers)

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> TextCompletion | StreamingResponse:
        rt = current(request)
        check_model(rt, body.model)
        if body.suffix:
            raise InvalidRequest("suffix is not supported by this model", param="suffix", code="unsupported_parameter")
        if body.best_of not in (None, body.n):
            raise InvalidRequest("best_of other than n is not supported", param="best_of", code="unsupported_parameter")
        if body.echo and body.logprobs is not None:
            raise InvalidRequest("echo with logprobs is not supported", param="echo", code="unsupported_parameter")
        engine = rt.served.engine
        prompts = _prompts(engine, body.prompt)
        want_logprobs = body.logprobs is not None
        streams: list[TokenStream] = []
        try:
            for prompt in prompts:
                max_tokens = body.max_tokens or _default_max(rt, settings, len(prompt))
                engine.check_budget(len(prompt), max_tokens)
                params = _params(body, max_tokens, logprobs=want_logprobs, top_logprobs=body.logprobs or 0)
                streams += _submit(rt, [prompt], params, body.n)
        except BaseException:
            for s in streams:
                s.close()
            raise
        prompt_tokens = sum(len(p) for p in prompts)
        echoes = [engine.tokenizer.decode(p, skip_special_tokens=True) if body.echo else "" for p in prompts
                  for _ in range(body.n)]
        if body.stream:
            usage = settings.always_include_usage or bool(body.stream_options and body.stream_options.include_usage)
            return _sse_response(_completion_sse(rt, body.model, prompt_tokens, streams, usage, want_logprobs, echoes))
        outs = await _collect(streams)
        report_usage(prompt_tokens, sum(o.completion_tokens for o in outs))
        return TextCompletion(
            model=body.model,
            choices=[CompletionChoice(index=i, text=echoes[i] + out.text, finish_reason=out.finish_reason,
                                      logprobs=_completion_logprobs(rt, out.logprobs, 0) if want_logprobs else None)
                     for i, out in enumerate(outs)],
            usage=_usage(prompt_tokens, outs),
        )

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

    try:
        from llmship.openai.embeddings import embeddings_router
    except ImportError:  # pragma: no cover - the embeddings module is optional at import time
        pass
    else:
        app.include_router(embeddings_router())
    _webchat_routes(app)
    return app


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


class ResponseHeaders:
    """Adds ``x-request-id`` and ``x-llmship-model-version`` to every response.

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

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-request-id", request_id)]
                runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
                if runtime is not None:
                    extra.append((b"x-llmship-model-version", runtime.served.version.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------- helpers
def _card(rt: Runtime) -> ModelCard:
    return ModelCard(id=rt.served.model_id, created=rt.served.created, root=rt.served.version,
                     max_model_len=rt.served.engine.context_length)


def _default_max(rt: Runtime, settings: ApiSettings, prompt_tokens: int) -> int:
    """Like vLLM: when the client gives no limit, generate up to the context window (capped by config)."""
    return min(settings.default_max_tokens, max(1, rt.served.engine.context_length - prompt_tokens))


def _params(body: Any, max_tokens: int, *, logprobs: bool, top_logprobs: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, seed=body.seed,
        stop=body.stop_list(), ignore_eos=body.ignore_eos, presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty, logprobs=logprobs, top_logprobs=top_logprobs,
    )


def _prompts(engine: Any, prompt: str | list[str] | list[int] | list[list[int]]) -> list[list[int]]:
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif prompt and all(isinstance(t, int) for t in prompt):
        items = [prompt]
    else:
        items = list(prompt)
    if not items:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    vocab = len(engine.tokenizer)
    out = []
    for item in items:
        if isinstance(item, str):
            ids = engine.encode(item)
        else:
            ids = list(item)
            if any(not 0 <= t < vocab for t in ids):
                raise InvalidRequest(f"prompt token ids must be in [0, {vocab})", param="prompt")
        if not ids:
            raise InvalidRequest("prompt must not be empty", param="prompt")
        out.append(ids)
    return out


def _submit(rt: Runtime, prompts: list[list[int]], params: SamplingParams, n: int) -> list[TokenStream]:
    """Queue ``n`` samples per prompt; with a seed, sample i uses seed + i (distinct yet reproducible)."""
    streams: list[TokenStream] = []
    try:
        for prompt in prompts:
            for i in range(n):
                p = params if i == 0 or params.seed is None else params.model_copy(update={"seed": params.seed + i})
                streams.append(rt.submit(prompt, p))
    except BaseException:
        for s in streams:
            s.close()
        raise
    return streams


async def _collect(streams: list[TokenStream]) -> list[Completion]:
    """Run every stream to the end; the first failure cancels the others."""
    tasks = [asyncio.ensure_future(s.collect()) for s in streams]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        for s in streams:
            s.close()
        raise


def _usage(prompt_tokens: int, outs: list[Completion]) -> Usage:
    completion = sum(o.completion_tokens for o in outs)
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion)


def _token_str(rt: Runtime, token_id: int) -> tuple[str, list[int]]:
    return rt.served.engine.token_text(token_id)


def _chat_logprobs(rt: Runtime, items: list[TokenLogprob]) -> ChoiceLogprobs:
    entries = []
    for item in items:
        token, raw = _token_str(rt, item.token_id)
        top = []
        for tid, lp in item.top:
            t, b = _token_str(rt, tid)
            top.append(TopLogprob(token=t, logprob=lp, bytes=b))
        entries.append(TokenLogprobEntry(token=token, logprob=item.logprob, bytes=raw, top_logprobs=top))
    return ChoiceLogprobs(content=entries)


def _completion_logprobs(rt: Runtime, items: list[TokenLogprob], offset: int) -> CompletionLogprobs:
    out = CompletionLogprobs()
    for item in items:
        token, _ = _token_str(rt, item.token_id)
        out.tokens.append(token)
        out.token_logprobs.append(item.logprob)
        out.top_logprobs.append({_token_str(rt, tid)[0]: lp for tid, lp in item.top} if item.top else None)
        out.text_offset.append(offset)
        offset += len(token)
    return out


async def _merged(streams: list[TokenStream]) -> AsyncIterator[tuple[int, StepOutput]]:
    """Interleave several streams as their tokens arrive; closing this closes (cancels) them all."""
    if len(streams) == 1:
        try:
            async for out in streams[0]:
                yield 0, out
        finally:
            streams[0].close()
        return
    queue: asyncio.Queue[tuple[int, StepOutput | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: TokenStream) -> None:
        try:
            async for out in stream:
                await queue.put((i, out))
            await queue.put((i, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            await queue.put((i, err))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            i, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()
        for s in streams:
            s.close()


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


def _sse_response(events: AsyncIterator[str], headers: dict[str, str] | None = None) -> StreamingResponse:
    return EventStream(events, media_type="text/event-stream",
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})


def _sse_error(err: BaseException) -> str:
    """After the headers are sent an error can only travel in-band, as OpenAI does."""
    if isinstance(err, LlmshipError):
        body = errors.error_body(str(err), err.status, type_=err.type, param=err.param, code=err.code)
    else:
        body = errors.error_body("internal error", 500)
    return f"data: {json.dumps(body)}\n\n"


async def _chat_sse(rt: Runtime, model: str, prompt_tokens: int, streams: list[TokenStream], include_usage: bool,
                    logprobs: bool, remember: Callable[[str | None], None]) -> AsyncIterator[str]:
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def event(choices: list[ChunkChoice], usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage)
        return f"data: {chunk.model_dump_json()}\n\n"

    completion = [0] * len(streams)
    text: list[str] = []
    ok = False
    try:
        for i in range(len(streams)):
            yield event([ChunkChoice(index=i, delta=Delta(role="assistant", content=""))])
        async for i, out in _merged(streams):
            completion[i] = out.completion_tokens
            if i == 0:
                text.append(out.text_delta)
            lp = _chat_logprobs(rt, out.logprobs) if logprobs and out.logprobs else None
            if out.text_delta or lp:
                yield event([ChunkChoice(index=i, delta=Delta(content=out.text_delta), logprobs=lp)])
            if out.finished:
                yield event([ChunkChoice(index=i, delta=Delta(), finish_reason=out.finish_reason)])
        ok = True
    except Exception as err:  # noqa: BLE001 - headers are sent: report in-band
        yield _sse_error(err)
        return
    finally:
        remember("".join(text) if ok else None)
        report_usage(prompt_tokens, sum(completion))  # what was generated, even for a stream cut short
    if include_usage:
        total = sum(completion)
        yield event([], Usage(prompt_tokens=prompt_tokens, completion_tokens=total, total_tokens=prompt_tokens + total))
    yield "data: [DONE]\n\n"


async def _completion_sse(rt: Runtime, model: str, prompt_tokens: int, streams: list[TokenStream],
                          include_usage: bool, logprobs: bool, echoes: list[str]) -> AsyncIterator[str]:
    chunk_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def event(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
        chunk = TextCompletion(id=chunk_id, created=created, model=model, choices=choices, usage=usage)
        return f"data: {chunk.model_dump_json()}\n\n"

    completion = [0] * len(streams)
    offsets = [len(e) for e in echoes]
    try:
        for i, echo in enumerate(echoes):
            if echo:
                yield event([CompletionChoice(index=i, text=echo)])
        async for i, out in _merged(streams):
            completion[i] = out.completion_tokens
            lp = None
            if logprobs and out.logprobs:
                lp = _completion_logprobs(rt, out.logprobs, offsets[i])
                offsets[i] += sum(len(t) for t in lp.tokens)
            if out.text_delta or lp or out.finished:
                yield event([CompletionChoice(index=i, text=out.text_delta, logprobs=lp,
                                              finish_reason=out.finish_reason if out.finished else None)])
    except Exception as err:  # noqa: BLE001 - headers are sent: report in-band
        yield _sse_error(err)
        return
    finally:
        report_usage(prompt_tokens, sum(completion))
    if include_usage:
        total = sum(completion)
        yield event([], Usage(prompt_tokens=prompt_tokens, completion_tokens=total, total_tokens=prompt_tokens + total))
    yield "data: [DONE]\n\n"
