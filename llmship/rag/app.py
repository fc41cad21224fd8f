"""The RAG HTTP surface: ``/v1/chat/completions`` (``model: "rag"`` or ``"rag:<collection>"``),
``/v1/retrieve``, ``/v1/models``, ``/livez``, ``/readyz``.

Like the chat app, ``create_rag_app()`` returns an app whose ``RagService`` is attached later
(``app.state.rag``) so a BentoML service can mount it at import time; until then every route but ``/livez``
answers 503. Errors are OpenAI error objects (the chat app's handlers, body-size limit and request-id header).
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from llmship.errors import EngineUnavailable
from llmship.openai import errors
from llmship.openai.headers import ResponseHeaders
from llmship.openai.limits import BodySizeLimit
from llmship.openai.protocol import ModelCard, ModelList
from llmship.openai.sse import sse_response
from llmship.rag.protocol import RagChatRequest, RetrieveRequest, RetrieveResponse
from llmship.rag.service import RagService

STARTED = int(time.time())


def create_rag_app(service: RagService | None = None, *, max_body_bytes: int = 4 * 1024 * 1024) -> FastAPI:
    app = FastAPI(title="llmship RAG", description="Retrieval-augmented, cited answers over an OpenAI-compatible API")
    app.state.rag = service
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(ResponseHeaders)

    def current(request: Request) -> RagService:
        rag = request.app.state.rag
        if rag is None:
            raise EngineUnavailable("the RAG service is still starting")
        return rag

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        if request.app.state.rag is None:
            return errors.error_response("the RAG service is still starting", 503, code="not_ready")
        return JSONResponse({"status": "ready"})

    @app.get("/v1/models")
    async def models(request: Request) -> ModelList:
        rag = current(request)
        return ModelList(data=[ModelCard(id=rag.settings.model_name, created=STARTED, owned_by="llmship")])

    @app.post("/v1/retrieve")
    async def retrieve(body: RetrieveRequest, request: Request) -> RetrieveResponse:
        """Scored chunks with each retriever's score, for debugging and for clients that bring their own LLM."""
        rag = current(request)
        return await rag.retrieve(body.query, top_k=body.top_k, mode=body.mode, collection=body.collection,
                                  rerank=body.rerank)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: RagChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        rag = current(request)
        prep = await rag.prepare(body)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            headers, events = await rag.open_stream(prep, include_usage)
            return sse_response(events, headers)
        answer = await rag.answer(prep)
        return JSONResponse(answer.body, headers=answer.headers)

    return app
