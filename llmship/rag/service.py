"""``RagService``: one grounded answer — retrieve for the last user turn, rerank, build the cited prompt, ask
the chat model, mark which sources the answer cites.

The three parts are protocols (``RetrievalBackend``, ``RerankBackend``, ``ChatUpstream``), so the same code
runs in-process (tests, benchmarks, ``llmship eval rag``) and as the ingress of the composed BentoML services.
``answer``/``open_stream`` produce OpenAI chat-completion objects with one addition, ``citations``: in the response
body, and in a last SSE chunk (``choices: []``) before ``[DONE]`` — the openai SDK keeps unknown fields, so
``completion.citations`` reads them unmodified. No sources → the fixed ``NO_SOURCES_ANSWER`` (finish
``stop``, zero usage), not an error and no model call.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from llmship.errors import InvalidRequest, ModelNotFound
from llmship.gateway.usage import report_usage
from llmship.knowledge.retrieval.retriever import Mode, finalize
from llmship.rag.backends import RerankBackend, RetrievalBackend
from llmship.rag.cache import ResponseCache, cache_key
from llmship.rag.citations import Citation, cite
from llmship.rag.prompt import INSTRUCTION, NO_SOURCES_ANSWER, grounded_messages, numbered_sources
from llmship.rag.protocol import RAG_MODEL, RagChatRequest, RetrieveResponse
from llmship.rag.upstream import ChatUpstream
from llmship.settings import env_overrides

#: Request fields that are not passed to the chat model as they are.
_OWN_FIELDS = {"model", "messages", "rag", "stream", "stream_options", "session_id", "n"}


class RagSettings(BaseModel):
    """RAG behaviour (env ``LLMSHIP_RAG_<FIELD>`` in upper case)."""

    model_name: str = RAG_MODEL
    top_k: int = Field(default=5, ge=1, le=50)
    mode: Mode = "hybrid"
    max_context_chars: int = Field(default=6000, ge=1)
    response_cache_size: int = Field(default=0, ge=0)  # off by default
    response_cache_ttl_s: float = Field(default=300.0, gt=0)
    always_include_usage: bool = False
    instruction: str = INSTRUCTION

    @classmethod
    def from_env(cls) -> RagSettings:
        return cls.model_validate(env_overrides(cls.model_fields, "LLMSHIP_RAG_"))


@dataclass
class Prepared:
    """A request after retrieval: what the chat model will be asked, and the sources it was given."""

    model: str
    question: str
    sources: list[Citation]
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    knowledge_version: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Answer:
    body: dict[str, Any]
    headers: dict[str, str]


class RagService:
    def __init__(self, retrieval: RetrievalBackend, rerank: RerankBackend, upstream: ChatUpstream,
                 settings: RagSettings | None = None) -> None:
        self.retrieval = retrieval
        self.reranker = rerank
        self.upstream = upstream
        self.settings = settings or RagSettings()
        self.cache = ResponseCache(self.settings.response_cache_size, self.settings.response_cache_ttl_s)

    # ---- retrieval ----------------------------------------------------------------------------------------------

    async def retrieve(self, query: str, *, top_k: int, mode: Mode, collection: str | None = None,
                       rerank: bool = True) -> RetrieveResponse:
        name, needs = await self.reranker.describe() if rerank else (None, frozenset())
        pool = await self.retrieval.candidates(query, top_k=top_k, mode=mode, collection=collection,
                                               pool=name is not None, needs=needs)
        found = await self.reranker.rerank(pool) if name is not None and pool.candidates else pool.candidates
        return RetrieveResponse(query=query, mode=mode, reranker=name, knowledge_version=pool.version,
                                data=finalize(found, top_k))

    def collection_of(self, model: str) -> str | None:
        """``rag`` → None, ``rag:<collection>`` → the collection; anything else is a 404."""
        base, _, collection = model.partition(":")
        if base != self.settings.model_name or (_ and not collection):
            raise ModelNotFound(f"The model '{model}' does not exist; this server serves "
                                f"'{self.settings.model_name}' and '{self.settings.model_name}:<collection>'",
                                param="model")
        return collection or None

    # ---- answers ------------------------------------------------------------------------------------------------

    async def prepare(self, body: RagChatRequest) -> Prepared:
        collection = self.collection_of(body.model)
        if body.n != 1:
            raise InvalidRequest("n > 1 is not supported by the rag model", param="n", code="unsupported_parameter")
        if body.session_id:
            raise InvalidRequest("session_id is not supported by the rag model; send the conversation",
                                 param="session_id", code="unsupported_parameter")
        messages = [m.as_template_dict() for m in body.messages]
        if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
            raise InvalidRequest("the last message must be a non-empty user message: it is the question",
                                 param="messages")
        question = messages[-1]["content"]
        opts = body.rag
        started = time.perf_counter()
        found = await self.retrieve(question, top_k=(opts and opts.top_k) or self.settings.top_k,
                                    mode=(opts and opts.mode) or self.settings.mode, collection=collection,
                                    rerank=opts.rerank if opts else True)
        retrieved_ms = (time.perf_counter() - started) * 1000
        sources = numbered_sources(found.data, self.settings.max_context_chars)
        params = body.model_dump(exclude_unset=True, exclude=_OWN_FIELDS)
        return Prepared(model=body.model, question=question, sources=sources,
                        messages=grounded_messages(messages, sources, self.settings.instruction) if sources else [],
                        params=params, knowledge_version=found.knowledge_version,
                        timings_ms={"retrieve": retrieved_ms})

    def _headers(self, prep: Prepared, model_version: str | None, cache: str | None) -> dict[str, str]:
        headers = {"x-llmship-retrieve-ms": f"{prep.timings_ms.get('retrieve', 0.0):.1f}"}
        if prep.knowledge_version:
            headers["x-llmship-knowledge-version"] = prep.knowledge_version
        if model_version:
            headers["x-llmship-model-version"] = model_version
        if cache:
            headers["x-llmship-cache"] = cache
        return headers

    async def _key(self, prep: Prepared) -> str | None:
        if not self.cache.enabled:
            return None
        info = await self.upstream.model_info()
        return cache_key(info.id, info.version, prep.messages, prep.params)

    async def answer(self, prep: Prepared) -> Answer:
        """The whole completion, with ``citations``."""
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        if not prep.sources:
            body = _completion(cid, created, prep.model, NO_SOURCES_ANSWER, "stop", _usage(0, 0))
            return Answer({**body, "citations": []}, self._headers(prep, None, None))
        key = await self._key(prep)
        hit = self.cache.get(key) if key else None
        state: str | None
        if hit is not None:
            body = _completion(cid, created, prep.model, hit["content"], hit["finish_reason"], hit["usage"])
            version, state = hit["version"], "hit"
        else:
            body, version = await self.upstream.complete(prep.messages, prep.params)
            body["model"] = prep.model
            state = "miss" if key else None
            choice = body["choices"][0]
            if key and choice.get("finish_reason") in ("stop", "length"):
                self.cache.put(key, {"content": choice["message"].get("content") or "",
                                     "finish_reason": choice["finish_reason"], "usage": body.get("usage"),
                                     "version": version})
        usage = body.get("usage") or {}
        report_usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        text = body["choices"][0]["message"].get("content") or ""
        body["citations"] = [c.model_dump() for c in cite(text, prep.sources)]
        return Answer(body, self._headers(prep, version, state))

    async def open_stream(self, prep: Prepared, include_usage: bool) -> tuple[dict[str, str], AsyncIterator[str]]:
        """The headers of a streamed answer (sent before the first token) and its SSE lines. The response cache is
        looked up once, here, so the ``x-llmship-cache`` header and the stream agree (and the hit counts once)."""
        if not prep.sources:
            return self._headers(prep, None, None), self._stream(prep, include_usage, None, None)
        info = await self.upstream.model_info()
        key = await self._key(prep)
        hit = self.cache.get(key) if key else None
        state = None if key is None else ("hit" if hit is not None else "miss")
        upstream = None
        if hit is None:
            # Open the model's stream and take its first chunk now: a request the model refuses (context length,
            # body size) is then a real 4xx, as without streaming, rather than a 200 with an error inside.
            upstream = aiter(self.upstream.stream(prep.messages, prep.params))
            try:
                first = await anext(upstream)
            except StopAsyncIteration:
                first = None
            upstream = _prepend(first, upstream)
        return self._headers(prep, info.version, state), self._stream(prep, include_usage, key, hit, upstream)

    async def _stream(self, prep: Prepared, include_usage: bool, key: str | None, hit: dict[str, Any] | None,
                      upstream: AsyncIterator[dict[str, Any]] | None = None) -> AsyncIterator[str]:
        """SSE lines: role, content deltas, finish, usage (when asked), citations, ``[DONE]``. Errors after the
        first byte travel in-band as an OpenAI error object (``llmship.openai.sse.sse_error``)."""
        from llmship.openai.sse import sse_error

        include_usage = include_usage or self.settings.always_include_usage
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": prep.model,
                     "choices": choices, **extra}
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        def replay(text: str, finish: str, usage: dict[str, Any] | None) -> list[str]:
            out = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
            if text:
                out.append(event([{"index": 0, "delta": {"content": text}, "finish_reason": None}]))
            out.append(event([{"index": 0, "delta": {}, "finish_reason": finish}]))
            if include_usage:
                out.append(event([], usage=usage))
            return out

        try:
            if not prep.sources:
                for line in replay(NO_SOURCES_ANSWER, "stop", _usage(0, 0)):
                    yield line
                yield event([], citations=[])
                yield "data: [DONE]\n\n"
                return
            if hit is not None:
                text = hit["content"]
                for line in replay(text, hit["finish_reason"], hit["usage"]):
                    yield line
            else:
                parts: list[str] = []
                finish, usage = None, None
                assert upstream is not None  # opened by open_stream whenever there is no cached answer
                async for chunk in upstream:
                    chunk["id"], chunk["model"], chunk["created"] = cid, prep.model, created
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    if not chunk.get("choices"):
                        continue  # the usage chunk: sent below, when asked for
                    chunk["usage"] = None
                    for choice in chunk["choices"]:
                        parts.append((choice.get("delta") or {}).get("content") or "")
                        finish = choice.get("finish_reason") or finish
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                if usage is not None:
                    report_usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
                if include_usage and usage is not None:
                    yield event([], usage=usage)
                text = "".join(parts)
                if key and finish in ("stop", "length"):
                    info = await self.upstream.model_info()
                    self.cache.put(key, {"content": text, "finish_reason": finish, "usage": usage,
                                         "version": info.version})
            yield event([], citations=[c.model_dump() for c in cite(text, prep.sources)])
        except Exception as err:  # noqa: BLE001 - headers are sent: report in-band
            yield sse_error(err)
            return
        yield "data: [DONE]\n\n"


async def _prepend(first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]
                   ) -> AsyncIterator[dict[str, Any]]:
    """``first`` (already taken from ``rest``), then the rest; closing this closes ``rest``."""
    try:
        if first is not None:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(cid: str, created: int, model: str, text: str, finish: str, usage: dict[str, Any] | None
                ) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                         "logprobs": None}],
            "usage": usage}
