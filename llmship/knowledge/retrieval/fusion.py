"""Score fusion for hybrid retrieval: how the dense and keyword (and graph) rankings become one.

Reciprocal-rank fusion throws the scores away and keeps only ranks, so a chunk the vector index ranks first by a
wide margin and one it ranks first by a hair count the same. Bruch et al. (2023, "An Analysis of Fusion Functions
for Hybrid Retrieval", ACM TOIS) show a convex combination of normalised scores is at least as good as RRF and
more robust across domains, with a weight that needs few labelled queries (or none: α = 0.5). So:

- ``normalise(scores, "zscore")``: each retriever's scores over the candidates it returned, standardised (mean 0,
  standard deviation 1). BM25's scale depends on the query's length and its terms' rarity and the cosine's on
  the embedder; standardising puts "how far above this query's typical candidate" on one scale for both.
  ``"minmax"`` (scaled to [0, 1]) is Bruch et al.'s default, kept for comparison. ``"none"`` keeps scores that
  are already on a fixed scale (graph mode's entity weights, sums of ``1 / log2(1 + chunk_count)``), a missing
  one counting 0: a list of one or two chunks — usual for an entity — carries no information once standardised.
- a candidate a retriever did not return gets that retriever's lowest normalised score (it was below the cut);
- ``convex(components, weights)``: Σ weight · normalised score.
- ``by_document(components, weights, doc_of)``: the same over documents (a document's score in a list = its
  best chunk's), each chunk then scored by its document's fusion, plus a millionth of its own chunk-level fusion
  so a document's chunks keep their order: evidence from one chunk of a document found by the vector index and
  another found by the keyword search adds up, as it should when the question is about the document.
- ``rrf(rankings)``: reciprocal-rank fusion, Σ 1 / (60 + rank), the earlier default, kept for comparison.

Measured with ``benchmarks/fusion_study.py`` (both searches' lists once, every candidate fused offline); the
figures and the choice are in ``Retriever``'s docstring and the README.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np

RRF_K = 60
Norm = Literal["minmax", "zscore", "none"]
NORMS: tuple[Norm, ...] = ("minmax", "zscore", "none")


def normalise(scores: Mapping[str, float], norm: Norm = "zscore") -> tuple[dict[str, float], float]:
    """``scores`` normalised, and the value a missing candidate gets (the normalised minimum)."""
    if not scores:
        return {}, 0.0
    ids = list(scores)
    values = np.fromiter((scores[i] for i in ids), dtype=np.float64, count=len(ids))
    if norm == "zscore":
        sd = float(values.std())
        scaled = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
    elif norm == "none":
        return dict(scores), 0.0
    elif norm == "minmax":
        span = float(values.max() - values.min())
        scaled = (values - values.min()) / span if span > 0 else np.ones_like(values)
    else:
        raise ValueError(f"unknown score normalisation {norm!r}; use one of {', '.join(NORMS)}")
    return dict(zip(ids, scaled.tolist(), strict=True)), float(scaled.min())


def convex(components: Mapping[str, Mapping[str, float]], weights: Mapping[str, float],
           norm: Norm | Mapping[str, Norm] = "zscore") -> dict[str, float]:
    """id → Σ over components of weight × normalised score (a missing id: the component's floor). ``norm``: one
    for all, or one per component (default zscore). Components without a weight are ignored; an empty component
    adds nothing."""
    norms = {name: (norm if isinstance(norm, str) else norm.get(name, "zscore")) for name in components}
    normalised = {name: normalise(scores, norms[name]) for name, scores in components.items()
                  if name in weights and scores}
    ids = {cid for scores, _ in normalised.values() for cid in scores}
    return {cid: sum(weights[name] * scores.get(cid, floor) for name, (scores, floor) in normalised.items())
            for cid in ids}


def by_document(components: Mapping[str, Mapping[str, float]], weights: Mapping[str, float],
                doc_of: Callable[[str], str], norm: Norm | Mapping[str, Norm] = "zscore") -> dict[str, float]:
    """Chunk id → its document's convex fusion (each list folded to documents by their best chunk) + 1e-6 × its own
    chunk-level fusion (which orders the chunks of one document)."""
    folded: dict[str, dict[str, float]] = {}
    for name, scores in components.items():
        best: dict[str, float] = {}
        for cid, score in scores.items():
            doc = doc_of(cid)
            if doc not in best or score > best[doc]:
                best[doc] = score
        folded[name] = best
    documents = convex(folded, weights, norm)
    chunks = convex(components, weights, norm)
    return {cid: documents[doc_of(cid)] + 1e-6 * score for cid, score in chunks.items()}


def rrf(rankings: Mapping[str, Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal-rank fusion: id → Σ over rankings of 1 / (k + rank), rank from 1."""
    fused: dict[str, float] = defaultdict(float)
    for ranking in rankings.values():
        for rank, cid in enumerate(ranking, start=1):
            fused[cid] += 1.0 / (k + rank)
    return dict(fused)
