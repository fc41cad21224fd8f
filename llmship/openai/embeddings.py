"""``POST /v1/embeddings``: OpenAI-compatible, over any ``EmbeddingBackend``.

The route never computes anything itself: it validates the request, asks the
backend found at ``request.app.state.embedder`` (``None`` until loaded: 503),
and shapes the answer. Two backends exist: ``LocalEmbeddingBackend`` (an
``Embedder`` in this process, run in a worker thread) and the BentoML adapter
in ``bentos/embedding`` (a separate embedding service).

Model names: the backend's ``model_id`` (``all-MiniLM-L6-v2``), compared
case-insensitively, with or without an organisation prefix
(``sentence-transformers/all-MiniLM-L6-v2`` works too); the response always
names the canonical ``model_id``. ``encoding_format="base64"`` (what the
official SDK asks for by default) is base64 of the little-endian float32 bytes.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from fastapi import APIRouter, Request

from llmship.errors import EngineUnavailable, InvalidRequest, ModelNotFound
from llmship.gateway.usage import report_usage
from llmship.openai.protocol import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage

if TYPE_CHECKING:
    from llmship.knowledge.embedder import Embedder

MAX_INPUTS = 2048  # OpenAI's limit on the number of inputs in one request


@runtime_checkable
class EmbeddingBackend(Protocol):
    """What the route needs: a name, a size, and texts → (vectors, total prompt tokens).

    ``ready`` is awaited before each request: a remote backend learns ``model_id``/``dimensions`` there on
    first use (and raises ``EngineUnavailable`` while it cannot); a local one returns at once.
    ``embed`` raises ``llmship.errors.LlmshipError`` subclasses for what the client got wrong
    (``InvalidRequest`` for an empty text, ``ContextLengthExceeded`` for an over-long one).
    """

    model_id: str
    dimensions: int

    async def ready(self) -> None: ...

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]: ...


class LocalEmbeddingBackend:
    """An in-process ``Embedder``; each call runs in a worker thread so the event loop keeps serving."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.dimensions = embedder.dimensions

    async def ready(self) -> None:
        return None

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        batch = await asyncio.to_thread(self.embedder.embed, texts)
        return batch.vectors.tolist(), batch.prompt_tokens


def request_texts(body: EmbeddingRequest) -> list[str]:
    """The request's inputs as a list of strings, or a 400 naming ``input``."""
    if isinstance(body.input, str):
        return [body.input]
    if not body.input:
        raise InvalidRequest("input must not be an empty list", param="input")
    texts = [item for item in body.input if isinstance(item, str)]
    if len(texts) < len(body.input):
        raise InvalidRequest("token arrays are not supported; send text", param="input")
    if len(body.input) > MAX_INPUTS:
        raise InvalidRequest(f"input has {len(body.input)} items; at most {MAX_INPUTS} are accepted",
                             param="input")
    return texts


def model_matches(requested: str, model_id: str) -> bool:
    wanted = requested.strip().lower()
    return wanted == model_id.lower() or wanted.rsplit("/", 1)[-1] == model_id.lower()


def encode_base64(vector: list[float]) -> str:
    """What the openai SDK decodes: ``np.frombuffer(base64.b64decode(s), dtype="float32")``."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def embeddings_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/embeddings")
    async def create_embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingResponse:
        backend: EmbeddingBackend | None = getattr(request.app.state, "embedder", None)
        if backend is None:
            raise EngineUnavailable("the embedding model is not loaded")
        await backend.ready()
        if not model_matches(body.model, backend.model_id):
            raise ModelNotFound(f"The model '{body.model}' does not exist; embeddings are served by "
                                f"'{backend.model_id}'", param="model")
        if body.dimensions is not None and body.dimensions != backend.dimensions:
            raise InvalidRequest(f"{backend.model_id} only produces {backend.dimensions}-dimensional embeddings; "
                                 f"dimensions={body.dimensions} is not supported", param="dimensions")
        texts = request_texts(body)
        vectors, prompt_tokens = await backend.embed(texts)
        report_usage(prompt_tokens)
        encode = encode_base64 if body.encoding_format == "base64" else list
        return EmbeddingResponse(
            data=[Embedding(index=i, embedding=encode(vector)) for i, vector in enumerate(vectors)],
            model=backend.model_id,
            usage=EmbeddingUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens),
        )

    return router
