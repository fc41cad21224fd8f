"""Retrieval evaluation: recall@k, doc-recall@k, MRR@k and latency per retrieval mode.

A question is answered at rank r when the r-th retrieved chunk contains the question's ``gold`` span
(whitespace-normalised, case-insensitive substring); doc-level recall asks only that the question's
``doc_id`` be among the top-k chunks' documents. MRR@k = mean of 1/r (0 when not in the top k). Latency is
the wall time of one ``retrieve`` call, questions run one after another (the query-embedding cache is warmed
first, so the figures compare the retrievers, not the embedder).

Questions: anything with ``id``, ``question``, ``gold``, ``doc_id`` (and optional ``kind``, ``hops``), objects
or dicts (``llmship.rag.eval_set.RagQuestion`` fits).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

_SPACE = re.compile(r"\s+")


class EvalQuestion(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: str
    question: str
    gold: str
    doc_id: str | None = None
    kind: str | None = None
    hops: int | None = None


class ModeResult(BaseModel):
    mode: str
    questions: int
    recall: float  # gold span in a top-k chunk
    doc_recall: float  # gold document among the top-k chunks' documents
    mrr: float
    mean_ms: float
    p95_ms: float
    recall_by_kind: dict[str, float] = {}
    recall_by_hops: dict[int, float] = {}
    misses: list[str] = []  # ids of questions whose gold span was not retrieved


class RetrievalEval(BaseModel):
    k: int
    label: str = ""
    modes: dict[str, ModeResult]

    def table(self) -> str:
        head = f"{'mode':<24} {'n':>4} {'recall@' + str(self.k):>9} {'doc@' + str(self.k):>7} " \
               f"{'MRR@' + str(self.k):>7} {'mean ms':>8} {'p95 ms':>8}"
        lines = [head, "-" * len(head)]
        for name, r in self.modes.items():
            label = f"{name} [{self.label}]" if self.label else name
            lines.append(f"{label:<24} {r.questions:>4} {r.recall:>9.3f} {r.doc_recall:>7.3f} {r.mrr:>7.3f} "
                         f"{r.mean_ms:>8.1f} {r.p95_ms:>8.1f}")
        return "\n".join(lines)


def squash(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def gold_rank(chunks: Sequence[Any], gold: str) -> int | None:
    """1-based rank of the first chunk whose text contains ``gold`` (normalised), else None."""
    want = squash(gold)
    for rank, chunk in enumerate(chunks, start=1):
        if want and want in squash(chunk.text):
            return rank
    return None


async def aevaluate_retrieval(retriever, questions: Sequence[Any],
                              modes: Sequence[str] = ("dense", "keyword", "hybrid", "graph"), k: int = 5,
                              label: str = "") -> RetrievalEval:
    qs = [q if isinstance(q, EvalQuestion) else EvalQuestion.model_validate(q) for q in questions]
    if not qs:
        raise ValueError("no questions to evaluate")
    for q in qs:  # warm the query-embedding cache (and the entity lexicon / NER) outside the timings
        await asyncio.to_thread(retriever.embed_query, q.question)
    if "graph" in modes:
        await asyncio.to_thread(retriever.query_entities, qs[0].question)
    results: dict[str, ModeResult] = {}
    for mode in modes:
        hits, doc_hits, rr, times, misses = [], [], [], [], []
        by_kind: dict[str, list[bool]] = defaultdict(list)
        by_hops: dict[int, list[bool]] = defaultdict(list)
        for q in qs:
            started = time.perf_counter()
            chunks = await retriever.retrieve(q.question, top_k=k, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
            rank = gold_rank(chunks, q.gold)
            hits.append(rank is not None)
            rr.append(0.0 if rank is None else 1.0 / rank)
            doc_hits.append(q.doc_id is not None and q.doc_id in {c.doc_id for c in chunks})
            by_kind[q.kind or "all"].append(rank is not None)
            by_hops[q.hops or 1].append(rank is not None)
            if rank is None:
                misses.append(q.id)
        results[mode] = ModeResult(
            mode=mode, questions=len(qs), recall=float(np.mean(hits)), doc_recall=float(np.mean(doc_hits)),
            mrr=float(np.mean(rr)), mean_ms=float(np.mean(times)), p95_ms=float(np.percentile(times, 95)),
            recall_by_kind={kind: float(np.mean(v)) for kind, v in sorted(by_kind.items())},
            recall_by_hops={h: float(np.mean(v)) for h, v in sorted(by_hops.items())}, misses=misses)
    return RetrievalEval(k=k, label=label, modes=results)


def evaluate_retrieval(retriever, questions: Sequence[Any],
                       modes: Sequence[str] = ("dense", "keyword", "hybrid", "graph"), k: int = 5,
                       label: str = "") -> RetrievalEval:
    """``aevaluate_retrieval`` on a fresh event loop (call that one from async code)."""
    return asyncio.run(aevaluate_retrieval(retriever, questions, modes, k, label))
