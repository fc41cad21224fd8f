"""The retrieval Bento: dense / keyword / hybrid / graph search over the knowledge graph, as its own service.

It owns the Bolt driver, the query-embedding LRU, the entity lexicon and the spaCy NER of graph mode, and
calls the embedding service (``bentoml.depends(Embedding)``) for query vectors. The RAG ingress calls
``candidates`` and hands the pool to the reranker service.

The graph may be down when this starts, or go down later: the driver is opened without a proof
(``GraphStore.connect(verify=False)``), every search that cannot reach the graph answers a 503 outage
(``bentos/_remote.outage_payload``) after ``LLMSHIP_RAG_GRAPH_RETRY_S`` (2 s) of driver retries, and for
``LLMSHIP_RAG_GRAPH_FAIL_FAST_S`` (5 s) after that every search answers it at once, without waiting out the retries
again (``GraphSettings.fail_fast_s``); the first request after that window asks the graph again, and succeeds once
it is back. Each search also reads the graph's refresh version marker (at most every
``LLMSHIP_RAG_VERSION_POLL_S``, 2 s) so a new embedding_refresh is served without a restart.

Settings (environment): the graph as everywhere (``NEO4J_URI`` ... or the embedded server's state file),
``LLMSHIP_RAG_QUERY_CACHE`` (1024 query vectors).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import bentoml
import numpy as np

from bentos._remote import LlmshipServiceError, dependency_http, outage_payload, post_sync
from bentos.embedding.service import embedding_dependency
from llmship import errors
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.retrieval.retriever import Retriever
from llmship.rag.wire import pool_to_wire

log = logging.getLogger(__name__)


class RemoteEmbedder:
    """The ``Embedder`` surface the retriever uses (``embed(texts).vectors``) over the embedding service. The
    retriever calls it from its worker threads, so it posts with a plain sync httpx client."""

    class _Batch:
        def __init__(self, vectors: np.ndarray) -> None:
            self.vectors = vectors

    def __init__(self, dep: Any) -> None:
        self._client, self._base = dependency_http(dep, sync=True, timeout=120)

    def embed(self, texts: list[str]) -> _Batch:
        result = post_sync(self._client, f"{self._base}/embed", "the embedding service", {"texts": list(texts)})
        return self._Batch(np.asarray(result["embeddings"], dtype=np.float32))


@bentoml.service(name="llmship-retrieval", workers=1, traffic={"timeout": 60, "max_concurrency": 128})
class Retrieval:
    embedder = embedding_dependency()  # the shared embedding service at LLMSHIP_EMBEDDING_URL, else its own process

    def __init__(self) -> None:
        settings = GraphSettings.from_env().model_copy(
            update={"max_retry_time_s": float(os.environ.get("LLMSHIP_RAG_GRAPH_RETRY_S", "2")),
                    "fail_fast_s": float(os.environ.get("LLMSHIP_RAG_GRAPH_FAIL_FAST_S", "5")),
                    "connect_timeout_s": 2.0})
        self.graph = GraphStore.connect(settings, verify=False)
        self.retriever = Retriever(self.graph, RemoteEmbedder(self.embedder), reranker=None,
                                   cache_size=int(os.environ.get("LLMSHIP_RAG_QUERY_CACHE", "1024")),
                                   version_poll_s=float(os.environ.get("LLMSHIP_RAG_VERSION_POLL_S", "2")))
        self.retriever.keyword_index.get()  # start building the in-memory keyword index; the graph's answers meanwhile
        log.info("retrieval over %s (database %s)", settings.uri, settings.database)

    @bentoml.api
    async def candidates(self, query: str, top_k: int = 5, mode: str = "hybrid", collection: str | None = None,
                         pool: bool = False, needs: list[str] | None = None) -> dict:
        """The fused candidates (``llmship.rag.wire`` format), or ``{"error": ...}`` when the graph is down."""
        try:
            found = await self.retriever.candidates(query, top_k, mode, collection=collection, pool=pool,
                                                    needs=frozenset(needs or ()))
        except errors.LlmshipError as err:
            if err.status >= 500:
                log.warning("retrieval failed: %s", err)
                return outage_payload(err)
            raise LlmshipServiceError(err) from err
        return pool_to_wire(found)

    @bentoml.api
    def cache_info(self) -> dict:
        return self.retriever.cache_info().model_dump()

    @bentoml.on_shutdown
    def close(self) -> None:
        self.graph.close()
