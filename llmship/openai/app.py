"""The FastAPI application: ``/v1/chat/completions``, ``/v1/models``, health.

``create_app()`` returns an app whose runtime is attached later
(``app.state.runtime``), so a BentoML service can mount it at import time and
load the model in its constructor; until then generation routes answer 503.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from llmship.engine.base import SamplingParams
from llmship.errors import EngineUnavailable, ModelNotFound
from llmship.openai import errors
from llmship.openai.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    Usage,
)
from llmship.openai.runtime import Runtime


def create_app(runtime: Runtime | None = None, default_max_tokens: int = 256) -> FastAPI:
    app = FastAPI(title="llmship", description="OpenAI-compatible API served by llmship")
    app.state.runtime = runtime
    errors.install(app)

    def current(request: Request) -> Runtime:
        rt = request.app.state.runtime
        if rt is None:
            raise EngineUnavailable("the model is still loading")
        return rt

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        rt = request.app.state.runtime
        if rt is not None:
            response.headers["x-llmship-model-version"] = rt.served.version
        return response

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        if request.app.state.runtime is None:
            return errors.error_response("the model is still loading", 503, code="not_ready")
        return JSONResponse({"status": "ready"})

    @app.get("/v1/models")
    async def models(request: Request) -> ModelList:
        rt = current(request)
        return ModelList(data=[_card(rt)])

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> ModelCard:
        rt = current(request)
        if model_id != rt.served.model_id:
            raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        return _card(rt)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest, request: Request) -> ChatCompletion | StreamingResponse:
        rt = current(request)
        if body.model != rt.served.model_id:
            raise ModelNotFound(f"The model '{body.model}' does not exist; this server serves "
                                f"'{rt.served.model_id}'", param="model")
        engine = rt.served.engine
        prompt = engine.apply_chat_template([m.as_template_dict() for m in body.messages])
        params = SamplingParams(
            max_tokens=body.max_completion_tokens or body.max_tokens or min(
                default_max_tokens, max(1, engine.context_length - len(prompt))),
            temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, seed=body.seed, stop=body.stop_list(),
        )
        engine.check_budget(len(prompt), params.max_tokens)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_sse(rt, body.model, prompt, params, include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        out = await rt.complete(prompt, params)
        return ChatCompletion(
            model=body.model,
            choices=[Choice(index=0, message=ChoiceMessage(content=out.text), finish_reason=out.finish_reason)],
            usage=Usage(prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                        total_tokens=out.prompt_tokens + out.completion_tokens),
        )

    return app


def _card(rt: Runtime) -> ModelCard:
    return ModelCard(id=rt.served.model_id, created=rt.served.created, root=rt.served.version,
                     max_model_len=rt.served.engine.context_length)


async def _sse(rt: Runtime, model: str, prompt: list[int], params: SamplingParams,
               include_usage: bool) -> AsyncIterator[str]:
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def event(choices: list[ChunkChoice], usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage)
        return f"data: {chunk.model_dump_json(exclude_none=False)}\n\n"

    yield event([ChunkChoice(index=0, delta=Delta(role="assistant", content=""))])
    completion_tokens = 0
    try:
        async for out in rt.stream(prompt, params):
            completion_tokens = out.completion_tokens
            if out.text_delta:
                yield event([ChunkChoice(index=0, delta=Delta(content=out.text_delta))])
            if out.finished:
                yield event([ChunkChoice(index=0, delta=Delta(), finish_reason=out.finish_reason)])
    except Exception as err:  # headers are sent: report in-band, as OpenAI does
        yield f"data: {json.dumps(errors.error_body(str(err), 500))}\n\n"
        return
    if include_usage:
        yield event([], Usage(prompt_tokens=len(prompt), completion_tokens=completion_tokens,
                              total_tokens=len(prompt) + completion_tokens))
    yield "data: [DONE]\n\n"
