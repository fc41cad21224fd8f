"""The embedding Bento: MiniLM sentence embeddings as a BentoML service, to run alone or under the chat service.

Standalone: ``bentoml serve bentos.embedding.service:Embedding --port 3001`` (from the repository root), then
``POST /embed {"texts": [...]}`` → ``{"embeddings", "prompt_tokens", "model", "dimensions"}``; ``POST /info``.
Composed: the chat service declares ``embedder = bentoml.depends(Embedding)`` and sets
``app.state.embedder = BentoEmbeddingBackend(self.embedder)``; ``bentoml serve`` then runs this service in its
own process (one worker, one torch thread by default) and the chat worker calls it over a local socket.

Errors cross the process boundary as BentoML exceptions: ``embed`` turns an ``LlmshipError`` into an
``LlmshipServiceError`` (a ``BentoMLException`` whose ``error_code`` is the error's HTTP status and whose text
is the OpenAI error object as JSON). BentoML answers a 4xx ``BentoMLException`` with
``[{"error": "<that text>"}]`` and that status; its client raises a ``BentoMLException`` subclass carrying the
body; ``BentoEmbeddingBackend`` parses it back into the same ``LlmshipError`` class, so a too-long input
reaches the chat API's user as 400 ``context_length_exceeded``. (BentoML hides the text of 5xx errors, so
those come back as a 503 without the remote message; the embedding service's log has it.)

Settings (environment): ``LLMSHIP_EMBED_MODEL_PATH`` (default: the packaged all-MiniLM-L6-v2),
``LLMSHIP_EMBED_MODEL_ID``, ``LLMSHIP_EMBED_THREADS`` (1), ``LLMSHIP_EMBED_BATCH_SIZE`` (32).
"""

from __future__ import annotations

import functools
import json
import logging
from http import HTTPStatus
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException

from llmship import errors
from llmship.knowledge.embedder import Embedder, EmbedderSettings

log = logging.getLogger(__name__)


class LlmshipServiceError(BentoMLException):
    """An ``LlmshipError`` on its way out of a BentoML service (no class-level ``error_code``: not registered
    in BentoML's status → exception mapping)."""

    def __init__(self, err: errors.LlmshipError) -> None:
        body = {"message": str(err), "type": err.type, "param": err.param, "code": err.code}
        super().__init__(json.dumps(body), error_code=HTTPStatus(err.status))


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


def _error_from_text(text: str, status: int) -> errors.LlmshipError:
    """Rebuild the ``LlmshipError`` that ``LlmshipServiceError`` carried (local call or over HTTP)."""
    if status >= 500:
        return errors.EngineUnavailable(f"the embedding service failed ({status}); see its log")
    detail: Any = text
    for _ in range(3):  # '[{"error": "<json>"}]' over HTTP, '<json>' for an in-process call
        if isinstance(detail, list) and detail:
            detail = detail[0]
        if isinstance(detail, dict) and "error" in detail:
            detail = detail["error"]
        if isinstance(detail, str):
            try:
                detail = json.loads(detail)
            except ValueError:
                break
        else:
            break
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        message, param, code, type_ = detail["message"], detail.get("param"), detail.get("code"), detail.get("type")
    else:
        message, param, code, type_ = (f"embedding service: {str(detail).strip() or HTTPStatus(status).phrase}",
                                       None, None, None)
    if code == errors.ContextLengthExceeded.code:
        return errors.ContextLengthExceeded(message, param=param)
    if status == 404:
        return errors.ModelNotFound(message, param=param)
    err = errors.InvalidRequest(message, param=param, code=code)
    err.status, err.type = status, type_ or err.type
    return err


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

    def _api(self, name: str):
        client = self._dep.to_async
        method = getattr(client, name, None)  # in-process instance, or a remote proxy after its setup
        return method if method is not None else functools.partial(client.call, name)

    async def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return await self._api(name)(**kwargs)
        except errors.LlmshipError:
            raise
        except BentoMLException as exc:
            raise _error_from_text(str(exc), int(exc.error_code)) from exc
        except Exception as exc:  # connection refused, timeout, a dependency still starting
            raise errors.EngineUnavailable(f"the embedding service is unavailable: {type(exc).__name__}: {exc}") \
                from exc

    async def ready(self) -> None:
        if self.model_id is None or self.dimensions is None:
            info = await self._call("info")
            self.model_id, self.dimensions = info["model"], int(info["dimensions"])

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        result = await self._call("embed", texts=list(texts))
        return result["embeddings"], int(result["prompt_tokens"])
