"""A ``CandidatePool`` as JSON, for the hop from the retrieval service to the reranker and the RAG ingress.

Embeddings travel as base64 float32 (a 40-candidate pool of 384-d vectors is ~80 KB instead of ~300 KB of
JSON numbers, and round-trips bit-exactly).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from llmship.knowledge.retrieval.retriever import Candidate, CandidatePool, QueryInfo


def _pack(vector: np.ndarray | None) -> str | None:
    if vector is None:
        return None
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def candidate_to_wire(c: Candidate) -> dict[str, Any]:
    return {"chunk_id": c.chunk_id, "score": c.score, "scores": c.scores, "doc_id": c.doc_id, "title": c.title,
            "text": c.text, "embedding": _pack(c.embedding), "entities": sorted(c.entities),
            "start_char": c.start_char, "end_char": c.end_char}


def candidate_from_wire(d: dict[str, Any]) -> Candidate:
    return Candidate(chunk_id=d["chunk_id"], score=float(d["score"]), scores=dict(d.get("scores") or {}),
                     doc_id=d.get("doc_id") or "", title=d.get("title"), text=d.get("text") or "",
                     embedding=_unpack(d.get("embedding")), entities=frozenset(d.get("entities") or ()),
                     start_char=d.get("start_char"), end_char=d.get("end_char"))


def pool_to_wire(pool: CandidatePool) -> dict[str, Any]:
    q = pool.query
    return {"query": {"text": q.text, "vector": _pack(q.vector), "entities": sorted(q.entities)},
            "version": pool.version, "candidates": [candidate_to_wire(c) for c in pool.candidates]}


def pool_from_wire(d: dict[str, Any]) -> CandidatePool:
    q = d["query"]
    vector = _unpack(q.get("vector"))
    query = QueryInfo(text=q["text"], vector=np.zeros(0, dtype=np.float32) if vector is None else vector,
                      entities=frozenset(q.get("entities") or ()))
    return CandidatePool(query=query, candidates=[candidate_from_wire(c) for c in d.get("candidates") or []],
                         version=d.get("version"))
