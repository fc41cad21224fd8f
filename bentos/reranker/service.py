"""The reranker Bento: reorders a candidate pool, as its own service (a cross-encoder wants its own CPU/GPU).

``LLMSHIP_RAG_RERANKER``: ``default`` (none: since hybrid fuses z-scored scores, no offline reranker
improved it on the demo eval set or on SciFact; see ``llmship/knowledge/retrieval/rerank.py``), ``none``, ``embedding``
(helps ``keyword`` mode), ``entity``, ``mmr``,
``entity+embedding`` or ``cross-encoder:<model id or path>`` (loaded at start, so a missing model fails the
start, not a request).
"""

from __future__ import annotations

import os

import bentoml

from bentos._remote import LlmshipServiceError
from llmship import errors
from llmship.knowledge.retrieval.rerank import make_reranker
from llmship.rag.wire import candidate_to_wire, pool_from_wire


@bentoml.service(name="llmship-reranker", workers=1, traffic={"timeout": 60, "max_concurrency": 64})
class Reranker:
    def __init__(self) -> None:
        self.reranker = make_reranker(os.environ.get("LLMSHIP_RAG_RERANKER", "default"))

    @bentoml.api
    def describe(self) -> dict:
        if self.reranker is None:
            return {"name": None, "needs": []}
        return {"name": self.reranker.name, "needs": sorted(self.reranker.needs)}

    @bentoml.api
    def rerank(self, pool: dict) -> list[dict]:
        """A ``llmship.rag.wire`` pool → its candidates reordered, with the reranker's score."""
        try:
            found = pool_from_wire(pool)
            ranked = self.reranker.rerank(found.query, found.candidates) if self.reranker else found.candidates
        except errors.LlmshipError as err:
            raise LlmshipServiceError(err) from err
        return [candidate_to_wire(c) for c in ranked]
