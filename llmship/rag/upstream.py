"""The chat model behind RAG answers: any OpenAI-compatible ``/v1`` (llmship's chat service, vLLM, OpenAI),
called with the official ``openai`` SDK.

``ChatUpstream(base_url, http_client=...)``: inside ``bentos/rag`` the client is an httpx client on the address
``bentoml serve`` gave the ``bentoml.depends(Chat)`` dependency (a Unix socket; ``bentos/_remote.dependency_http``),
or a URL (``LLMSHIP_RAG_CHAT_URL``) for a chat service elsewhere. The served model's id and version (``/v1/models``: llmship puts the registry version in ``root``)
are read on first use and again after ``info_ttl_s``, so a redeployed chat model changes the response-cache
key. Errors come back as ``LlmshipError``s with the upstream status (a 400 stays a 400); an upstream that
cannot be reached or answers 5xx is a 503 ``engine_unavailable``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import httpx
import openai

from llmship.errors import EngineUnavailable, InvalidRequest, LlmshipError, ModelNotFound

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


class ModelInfo(NamedTuple):
    """The upstream chat model: its id and (for llmship's chat service) its registry version."""

    id: str
    version: str | None


def _error(err: Exception) -> LlmshipError:
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        body = err.body if isinstance(err.body, dict) else {}
        detail = body.get("error", body) if isinstance(body, dict) else {}
        message = detail.get("message") if isinstance(detail, dict) else None
        message = f"chat model: {message or err.message}"
        if status >= 500:
            return EngineUnavailable(f"the chat model failed ({status}): {message}")
        if status == 404:
            return ModelNotFound(message)
        out = InvalidRequest(message, param=detail.get("param") if isinstance(detail, dict) else None,
                             code=detail.get("code") if isinstance(detail, dict) else None)
        out.status = status
        if isinstance(detail, dict) and detail.get("type"):
            out.type = detail["type"]
        return out
    return EngineUnavailable(f"the chat model is unavailable: {type(err).__name__}: {err}")


def _messages(messages: list[dict[str, Any]]) -> list[ChatCompletionMessageParam]:
    """The messages the RAG service built, as the SDK's typed dicts (already validated by the protocol models)."""
    return cast("list[ChatCompletionMessageParam]", messages)


class ChatUpstream:
    def __init__(self, base_url: str, *, api_key: str | None = None, http_client: httpx.AsyncClient | None = None,
                 model: str | None = None, info_ttl_s: float = 10.0, timeout_s: float = 600.0) -> None:
        self.base_url = base_url
        # openai takes an httpx (or httpx2) client at run time; its annotation names only httpx2's
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "none",
                                          http_client=cast(Any, http_client), max_retries=0, timeout=timeout_s)
        self._model = model
        self.info_ttl_s = info_ttl_s
        self._info: ModelInfo | None = None
        self._info_at = -float("inf")

    async def model_info(self) -> ModelInfo:
        if self._info is None or time.monotonic() - self._info_at > self.info_ttl_s:
            try:
                models = [m async for m in self._client.models.list()]
            except Exception as err:  # any failure here: no chat model to answer with
                if self._info is not None:
                    return self._info  # keep answering with what we knew; the completion call will tell
                raise _error(err) from err
            chosen = next((m for m in models if self._model in (None, m.id)), None)
            if chosen is None:
                raise EngineUnavailable(f"the chat service at {self.base_url} does not serve {self._model!r}")
            self._info = ModelInfo(chosen.id, getattr(chosen, "root", None))
            self._info_at = time.monotonic()
        return self._info

    async def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """One chat completion (as a dict) and the model version that answered."""
        info = await self.model_info()
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=info.id, messages=_messages(messages), stream=False, extra_body=params)
        except Exception as err:
            raise _error(err) from err
        version = raw.headers.get("x-llmship-model-version") or info.version or ""
        return raw.parse().to_dict(), version

    async def stream(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The chunks of a streamed chat completion, as dicts (the last one carries usage)."""
        info = await self.model_info()
        body = {**params, "stream_options": {"include_usage": True}}
        try:
            stream = await self._client.chat.completions.create(model=info.id, messages=_messages(messages),
                                                                stream=True, extra_body=body)
        except Exception as err:
            raise _error(err) from err
        try:
            async for chunk in stream:
                yield chunk.to_dict()
        except openai.APIError as err:
            raise _error(err) from err
        finally:
            await stream.close()

    async def close(self) -> None:
        await self._client.close()
