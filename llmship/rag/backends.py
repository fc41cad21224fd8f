"""The two retrieval-side parts a RAG service calls, as protocols with in-process implementations.

``bentos/`` implements the same protocols over BentoML dependencies (each part its own service); tests and
benchmarks use these in-process ones over a real ``Retriever`` and ``Reranker``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from llmship.knowledge.retrieval.retriever import Candidate, CandidatePool, Mode, Retriever


class RetrievalBackend(Protocol):
    async def candidates(self, query: str, *, top_k: int, mode: Mode, collection: str | None, pool: bool,
                         needs: frozenset[str]) -> CandidatePool: ...


class RerankBackend(Protocol):
    async def describe(self) -> tuple[str | None, frozenset[str]]:
        """The reranker's name (None: no reranking) and what it needs the retriever to fetch."""
        ...

    async def rerank(self, pool: CandidatePool) -> list[Candidate]: ...


class LocalRetrieval:
    """A ``Retriever`` in this process (its own reranker is not used: reranking is the other part's job)."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    async def candidates(self, query: str, *, top_k: int, mode: Mode, collection: str | None, pool: bool,
                         needs: frozenset[str]) -> CandidatePool:
        return await self.retriever.candidates(query, top_k, mode, collection=collection, pool=pool, needs=needs)


class LocalRerank:
    """A ``llmship.knowledge.retrieval.rerank`` reranker in this process (None: keep the fused order)."""

    def __init__(self, reranker) -> None:
        self.reranker = reranker

    async def describe(self) -> tuple[str | None, frozenset[str]]:
        if self.reranker is None:
            return None, frozenset()
        return self.reranker.name, frozenset(self.reranker.needs)

    async def rerank(self, pool: CandidatePool) -> list[Candidate]:
        if self.reranker is None or not pool.candidates:
            return pool.candidates
        return await asyncio.to_thread(self.reranker.rerank, pool.query, pool.candidates)
