"""The embedding Bento: MiniLM sentence embeddings as a BentoML service, to run alone or under the chat service.

Standalone: ``bentoml serve bentos.embedding.service:Embedding --port 3001`` (from the repository root), then
``POST /embed {"texts": [...]}`` → ``{"embeddings", "prompt_tokens", "model", "dimensions"}``; ``POST /info``.
Composed: the chat service declares ``embedder = bentoml.depends(Embedding)`` and sets
``app.state.embedder = BentoEmbeddingBackend(self.embedder)``; ``bentoml serve`` then runs this service in its
own process (one worker, one torch thread by default) and the chat worker calls it over a local socket.

Errors cross the process boundary as in ``bentos/_remote.py``, so a too-long input reaches the chat API's user
as 400 ``context_length_exceeded``.

Deployed apart (its own Kubernetes Deployment and Service): a service that declares ``embedding_dependency()``
instead of ``bentoml.depends(Embedding)`` calls the service at ``LLMSHIP_EMBEDDING_URL`` (e.g.
``http://llmship-embedding:3000``) when it is set — ``bentoml.depends(Embedding, url=...)``, which ``bentoml serve``
does not start locally — and starts it as its own local process otherwise.

Settings (environment): ``LLMSHIP_EMBED_MODEL_PATH`` (default: the packaged all-MiniLM-L6-v2),
``LLMSHIP_EMBED_MODEL_ID``, ``LLMSHIP_EMBED_THREADS`` (1), ``LLMSHIP_EMBED_BATCH_SIZE`` (32).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import bentoml

from bentos._remote import LlmshipServiceError, call_async
from llmship import errors
from llmship.knowledge.embedder import Embedder, EmbedderSettings

log = logging.getLogger(__name__)


@bentoml.service(name="llmship-embedding", workers=1, traffic={"timeout": 120, "max_concurrency": 64})
class Embedding:
    def __init__(self) -> None:
        settings = EmbedderSettings.from_env()
        self.embedder = Embedder.load(settings.model_path, threads=settings.threads, batch_size=settings.batch_size,
                                      model_id=settings.model_id)
        log.info("embedding model %s loaded (%d dimensions, %d tokens per input, %s torch threads)",
                 self.embedder.model_id, self.embedder.dimensions, self.embedder.max_input_tokens,
                 settings.threads or "default")

    @bentoml.api(batchable=False)
    def embed(self, texts: list[str]) -> dict:
        """L2-normalised float32 embeddings of ``texts`` (each non-empty and within ``max_input_tokens``)."""
        try:
            batch = self.embedder.embed(texts)
        except errors.LlmshipError as err:
            raise LlmshipServiceError(err) from err
        return {"embeddings": batch.vectors.tolist(), "prompt_tokens": batch.prompt_tokens,
                "model": self.embedder.model_id, "dimensions": self.embedder.dimensions}

    @bentoml.api
    def info(self) -> dict:
        return {"model": self.embedder.model_id, "dimensions": self.embedder.dimensions,
                "max_input_tokens": self.embedder.max_input_tokens}


URL_ENV = "LLMSHIP_EMBEDDING_URL"


def embedding_dependency(environ: Mapping[str, str] | None = None) -> Any:
    """``bentoml.depends(Embedding)``: the service at ``$LLMSHIP_EMBEDDING_URL`` when set, else a local process.
    Read when the depending service's class is defined (its module is imported), as BentoML needs it then."""
    url = (os.environ if environ is None else environ).get(URL_ENV, "").strip().rstrip("/")
    return bentoml.depends(Embedding, url=url or None)


class BentoEmbeddingBackend:
    """``llmship.openai.embeddings.EmbeddingBackend`` over ``bentoml.depends(Embedding)``.

    ``model_id``/``dimensions`` are taken as given or fetched once from the service's ``info`` API by
    ``ready()`` (the route awaits it before each request; the dependency may still be loading when the chat
    service starts, so it cannot be asked in ``__init__``).
    """

    def __init__(self, dep: Any, *, model_id: str | None = None, dimensions: int | None = None) -> None:
        self._dep = dep
        self.model_id = model_id
        self.dimensions = dimensions

    async def _call(self, name: str, **kwargs: Any) -> Any:
        return await call_async(self._dep, name, "the embedding service", **kwargs)

    async def ready(self) -> None:
        if self.model_id is None or self.dimensions is None:
            info = await self._call("info")
            self.model_id, self.dimensions = info["model"], int(info["dimensions"])

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        result = await self._call("embed", texts=list(texts))
        return result["embeddings"], int(result["prompt_tokens"])
