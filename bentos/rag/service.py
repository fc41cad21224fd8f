"""The RAG Bento (default 127.0.0.1:3001): the ingress of embedder → retriever → reranker → chat model.

Each part is its own BentoML service with its own process, worker count and thread budget, composed with
``bentoml.depends`` (the seed's Ray Serve shape): ``Retrieval`` (graph search; it depends on ``Embedding``),
``Reranker``, and the chat model — the chat Bento itself (``bentos.chat.service:Chat``: ``bentoml serve``
starts it, and its embedding dependency is shared) or, with ``LLMSHIP_RAG_CHAT_URL``, any OpenAI-compatible
``/v1`` elsewhere (``LLMSHIP_RAG_CHAT_MODEL``). ``LLMSHIP_RAG_CHAT_API_KEY`` is the key it sends to the chat
model either way (the chat service's gateway asks for one when ``LLMSHIP_GATEWAY_AUTH`` is on). The chat hop uses the ``openai``
SDK; for the local chat service its transport is the dependency's own local socket.

The routes, errors and caches are ``llmship.rag`` (``create_rag_app``/``RagService``); settings
``LLMSHIP_RAG_*`` (``RagSettings``).

    bentoml serve bentos.rag.service:Rag          # from the repository root; LLMSHIP_MODEL_URI as for chat
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from bentos._remote import call_async, dependency_http, raise_outage
from bentos.chat.service import Chat
from bentos.reranker.service import Reranker
from bentos.retrieval.service import Retrieval
from llmship.gateway import Gateway
from llmship.knowledge.retrieval.retriever import Candidate, CandidatePool, Mode
from llmship.rag.app import create_rag_app
from llmship.rag.service import RagService, RagSettings
from llmship.rag.upstream import ChatUpstream
from llmship.rag.wire import candidate_from_wire, pool_from_wire, pool_to_wire

CHAT_URL = os.environ.get("LLMSHIP_RAG_CHAT_URL") or None
app = create_rag_app()


class BentoRetrieval:
    """``llmship.rag.backends.RetrievalBackend`` over ``bentoml.depends(Retrieval)``."""

    def __init__(self, dep: Any) -> None:
        self._dep = dep

    async def candidates(self, query: str, *, top_k: int, mode: Mode, collection: str | None, pool: bool,
                         needs: frozenset[str]) -> CandidatePool:
        result = await call_async(self._dep, "candidates", "the retrieval service", query=query, top_k=top_k,
                                  mode=mode, collection=collection, pool=pool, needs=sorted(needs))
        raise_outage(result)
        return pool_from_wire(result)


class BentoRerank:
    """``llmship.rag.backends.RerankBackend`` over ``bentoml.depends(Reranker)``."""

    def __init__(self, dep: Any) -> None:
        self._dep = dep
        self._described: tuple[str | None, frozenset[str]] | None = None

    async def describe(self) -> tuple[str | None, frozenset[str]]:
        if self._described is None:
            info = await call_async(self._dep, "describe", "the reranker service")
            self._described = (info["name"], frozenset(info["needs"]))
        return self._described

    async def rerank(self, pool: CandidatePool) -> list[Candidate]:
        ranked = await call_async(self._dep, "rerank", "the reranker service", pool=pool_to_wire(pool))
        return [candidate_from_wire(c) for c in ranked]


def local_chat_upstream(dep: Any) -> ChatUpstream:
    """The openai SDK over the chat dependency's own address (BentoML's client speaks its API protocol, not
    the OpenAI routes the chat service mounts)."""
    client, base = dependency_http(dep)
    return ChatUpstream(f"{base}/v1", api_key=os.environ.get("LLMSHIP_RAG_CHAT_API_KEY"), http_client=client)


@bentoml.service(name="llmship-rag", workers=1, traffic={"timeout": 600, "max_concurrency": 256},
                 http={"port": 3001})
@bentoml.asgi_app(app, path="/")
class Rag:
    retrieval = bentoml.depends(Retrieval)
    reranker = bentoml.depends(Reranker)
    if CHAT_URL is None:  # with a URL there is no local chat service for bentoml serve to start
        chat = bentoml.depends(Chat)

    def __init__(self) -> None:
        if CHAT_URL is None:
            upstream = local_chat_upstream(self.chat)
        else:
            upstream = ChatUpstream(CHAT_URL, api_key=os.environ.get("LLMSHIP_RAG_CHAT_API_KEY"),
                                    model=os.environ.get("LLMSHIP_RAG_CHAT_MODEL") or None)
        app.state.rag = RagService(BentoRetrieval(self.retrieval), BentoRerank(self.reranker), upstream,
                                   RagSettings.from_env())



# Keys, limits, request caps and the audit line (LLMSHIP_GATEWAY_*), as on the chat service.
Rag.add_asgi_middleware(Gateway, service="rag")
