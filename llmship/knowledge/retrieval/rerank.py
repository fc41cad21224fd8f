"""Rerankers: reorder the retriever's fused candidate pool before the final ``top_k`` cut.

A ``Reranker`` gets the query (text, embedding, the stored entities it names) and the candidates (text,
embedding, the entities each chunk MENTIONS, the fused score) and returns them reordered, with its own score
in ``Candidate.score`` and in ``scores[<name>]``. ``needs`` tells the retriever what to fetch:
``"entities"`` (the chunks' MENTIONS, one extra read), ``"embeddings"`` (every candidate's stored vector) or
``"cosine"`` (the query-chunk cosine: the stored vector only of candidates the dense search did not score —
reading 40 vectors over Bolt cost ~30 ms, most of a reranked query).

- ``CrossEncoderReranker(model_name)``: a sentence-transformers cross-encoder, for deployments that
  configure one (the model is downloaded on first use; offline it fails with a clear ``RerankError``).
- ``EmbeddingRescore``: cosine of query and chunk embedding, blended with the fused score's rank.
- ``EntityOverlap``: boost by the share of the query's entities a chunk mentions.
- ``MMR``: maximal marginal relevance (diversify away from near-duplicate chunks).
- ``Chain``: several in a row.

Measured on the eval set (115 questions, 99 one-hop + 16 two-hop, over the 610-chunk demo corpus;
``python benchmarks/retrieval_eval.py``, 2 contended cores, embedded ArcadeDB), recall@5 / MRR@5 change
against no reranking (baseline recall@5 dense 0.904, keyword 0.904, hybrid 0.913, graph 0.904):

==================  ==============  ==============  ==============  ==============  ===============
reranker            dense           keyword         hybrid          graph           extra latency
==================  ==============  ==============  ==============  ==============  ===============
embedding           +0.0 / +0.000   +2.6 / +0.048   -0.9 / +0.011   +3.5 / +0.084   ~+5-30 ms
entity              -1.7 / -0.106   -7.0 / -0.123   -6.1 / -0.162   -15.7 / -0.119  ~+10-25 ms
mmr                 +0.0 / -0.009   -0.9 / -0.020   -1.7 / -0.023   -4.3 / -0.056   ~+5-50 ms
entity+embedding    -0.9 / -0.031   +5.2 / +0.019   +0.9 / -0.039   +0.9 / +0.038   ~+10-30 ms
==================  ==============  ==============  ==============  ==============  ===============

(entity/mmr/entity+embedding were measured before the keyword query dropped stop words; their signs held
on that baseline too, against which ``embedding`` measured +0.0/+5.2/+0.9/+0.9 recall points.)
Entity overlap hurts: the chunks that mention a question's entity are many, and the one holding the answer
is often not the one mentioning it most; MMR pushes out the near-duplicate chunk that carries the answer.
That table was measured when hybrid was reciprocal-rank fusion, and ``embedding`` was the default then. Since
hybrid fuses z-scored scores (``llmship.knowledge.retrieval.fusion``) it already weighs the cosine, and the re-score
counting it a second time hurts (``benchmarks/retrieval_eval.py --rerankers none,embedding``, demo corpus,
recall@5 none → embedding: dense 0.904 → 0.904, keyword 0.904 → 0.930, hybrid 0.948 → 0.913, graph (its weights z-scored then) 0.948
→ 0.922; SciFact dev, ``benchmarks/fusion_study.py --pool 120``, nDCG@10: keyword 0.698 → 0.718, hybrid 0.752 →
0.734). So ``DEFAULT_RERANKER = "none"`` (which also saves reading the candidates' embeddings over Bolt); the
re-score stays available, and helps where one search runs alone (``keyword``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from llmship.errors import LlmshipError
from llmship.knowledge.retrieval.retriever import Candidate, QueryInfo, cosine_to_query

RRF_K = 60


class RerankError(LlmshipError):
    """A reranker cannot be loaded or run."""

    code = "rerank_failed"


@runtime_checkable
class Reranker(Protocol):
    name: str
    needs: frozenset[str]

    def rerank(self, query: QueryInfo, candidates: list[Candidate]) -> list[Candidate]: ...


def _apply(name: str, candidates: list[Candidate], scores: Sequence[float] | np.ndarray) -> list[Candidate]:
    for cand, score in zip(candidates, scores, strict=True):
        cand.score = float(score)
        cand.scores[name] = float(score)
    return sorted(candidates, key=lambda c: (-c.score, c.chunk_id))


def _rank_prior(n: int) -> np.ndarray:
    """The incoming order as an RRF-style score (1 / (60 + rank)), so scores of any scale can be blended."""
    return 1.0 / (RRF_K + np.arange(1, n + 1, dtype=np.float64))


def _embeddings(query: QueryInfo, candidates: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    dims = len(query.vector)
    mat = np.stack([c.embedding if c.embedding is not None and len(c.embedding) == dims else np.zeros(dims)
                    for c in candidates]).astype(np.float32)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    q = np.asarray(query.vector, dtype=np.float32)
    return mat / np.where(norms == 0, 1, norms), q / (np.linalg.norm(q) or 1.0)


class EmbeddingRescore:
    """RRF of the incoming order and the cosine order (``weight`` on the cosine ranking). The cosine comes from
    the dense search's score where it scored the chunk, so only keyword-only candidates need their embedding
    read (``needs = {"cosine"}``)."""

    needs = frozenset({"cosine"})

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight
        self.name = "embedding"

    def rerank(self, query: QueryInfo, candidates: list[Candidate]) -> list[Candidate]:
        cos = np.array([cosine_to_query(c, query.vector) for c in candidates])
        by_cos = np.empty(len(candidates))
        by_cos[np.argsort(-cos, kind="stable")] = _rank_prior(len(candidates))
        return _apply(self.name, candidates, _rank_prior(len(candidates)) + self.weight * by_cos)


class EntityOverlap:
    """Incoming-order score + ``boost`` × (share of the query's entities the chunk mentions) / 60: a chunk
    naming every query entity moves up about as much as a first place in one more RRF ranking."""

    needs = frozenset({"entities"})

    def __init__(self, boost: float = 1.0) -> None:
        self.boost = boost
        self.name = "entity"

    def rerank(self, query: QueryInfo, candidates: list[Candidate]) -> list[Candidate]:
        if not query.entities:
            return candidates
        prior = _rank_prior(len(candidates))
        overlap = np.array([len(query.entities & c.entities) / len(query.entities) for c in candidates])
        return _apply(self.name, candidates, prior + self.boost * overlap / (RRF_K + 1))


class MMR:
    """Maximal marginal relevance over chunk embeddings: ``λ · relevance − (1 − λ) · max cos(selected)``,
    relevance = the incoming order's score scaled to [0, 1]."""

    needs = frozenset({"embeddings"})

    def __init__(self, lambda_: float = 0.7) -> None:
        self.lambda_ = lambda_
        self.name = "mmr"

    def rerank(self, query: QueryInfo, candidates: list[Candidate]) -> list[Candidate]:
        if len(candidates) < 2:
            return candidates
        mat, _ = _embeddings(query, candidates)
        prior = _rank_prior(len(candidates))
        rel = (prior - prior.min()) / (prior.max() - prior.min())
        sim = mat @ mat.T
        chosen: list[int] = []
        left = list(range(len(candidates)))
        scores = np.zeros(len(candidates))
        while left:
            redundancy = sim[np.ix_(left, chosen)].max(axis=1) if chosen else np.zeros(len(left))
            values = self.lambda_ * rel[left] - (1 - self.lambda_) * redundancy
            best = int(np.argmax(values))
            scores[left[best]] = len(candidates) - len(chosen)  # selection order as a descending score
            chosen.append(left.pop(best))
        return _apply(self.name, candidates, scores)


class Chain:
    def __init__(self, *rerankers: Reranker) -> None:
        self.rerankers = rerankers
        self.name = "+".join(r.name for r in rerankers)
        self.needs = frozenset().union(*(r.needs for r in rerankers))

    def rerank(self, query: QueryInfo, candidates: list[Candidate]) -> list[Candidate]:
        for reranker in self.rerankers:
            candidates = reranker.rerank(query, candidates)
        return candidates


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` (e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``) scoring each
    (query, chunk) pair. Loaded at construction so a missing model fails at start-up, not on a request."""

    needs: frozenset[str] = frozenset()

    def __init__(self, model_name: str, *, device: str | None = None, batch_size: int = 32) -> None:
        self.name = "cross_encoder"
        self.model_name = model_name
        self.batch_size = batch_size
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise RerankError("the cross-encoder reranker needs sentence-transformers "
                              "(pip install sentence-transformers)") from None
        try:
            self._model = CrossEncoder(model_name, device=device)
        except Exception as err:  # noqa: BLE001 — hub/offline/format errors come in many types
            first = " ".join(str(err).split())[:200]
            raise RerankError(f"cannot load the cross-encoder {model_name!r} (offline, or not a cross-encoder "
                              f"model): {type(err).__name__}: {first}") from None

    def rerank(self, query: QueryInfo, candidates: list[Candidate]) -> list[Candidate]:
        if not candidates:
            return candidates
        scores = self._model.predict([(query.text, c.text) for c in candidates], batch_size=self.batch_size)
        return _apply(self.name, candidates, np.asarray(scores, dtype=np.float64))


#: name → factory, as the benchmark measures them.
CANDIDATES: dict[str, Callable[[], Reranker | None]] = {
    "none": lambda: None,
    "embedding": EmbeddingRescore,
    "entity": EntityOverlap,
    "mmr": MMR,
    "entity+embedding": lambda: Chain(EntityOverlap(), EmbeddingRescore()),
}
#: The combination used when a ``Retriever`` is built with ``reranker="default"``.
DEFAULT_RERANKER = "none"


def default_reranker() -> Reranker | None:
    return CANDIDATES[DEFAULT_RERANKER]()


def make_reranker(name: str | None) -> Reranker | None:
    """A reranker by configuration name: one of ``CANDIDATES`` (``"default"`` is ``DEFAULT_RERANKER``,
    ``"none"``/empty is no reranking) or ``cross-encoder:<model id or path>``."""
    name = (name or "none").strip()
    if name == "default":
        name = DEFAULT_RERANKER
    if name.startswith("cross-encoder:"):
        return CrossEncoderReranker(name.split(":", 1)[1])
    if name not in CANDIDATES:
        raise RerankError(f"unknown reranker {name!r}; use one of {', '.join(CANDIDATES)}, default or "
                          "cross-encoder:<model>")
    return CANDIDATES[name]()
