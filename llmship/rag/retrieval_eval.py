"""``llmship eval retrieval --beir <folder>``: retrieval quality and latency on data nobody here wrote.

A BEIR folder (``llmship.rag.beir``) is loaded into its own collection (document ids
``beir-<name>/<corpus id>``) by the same code as ``embedding_refresh`` (chunking, the embedding cache, the
scoped plan, the batched graph writes), then every judged query is asked of the ``Retriever`` the RAG service
runs, once per mode:

- quality: ``top_k=QUALITY_CHUNKS`` chunks, folded to documents in the order they first appear (a document is
  as good as its best chunk), scored against the qrels: nDCG@10, recall@10, MRR@10; and a deep call
  (``top_k=DEEP_CHUNKS``) for recall@100;
- latency: a separate ``top_k=10`` call per query with the query-embedding cache off, so every figure includes
  embedding the query, as a ``/v1/retrieve`` call that misses the cache does (p50/p95).

Two peers run on the same documents in the same run: BM25 (``bm25s``, English stop words and Snowball stemming,
its documented BEIR set-up) and exact dense search with the same embedder over whole documents (truncated at
the model's 256 word pieces, as sentence-transformers does). Scores are BEIR's: ``pytrec_eval`` (BEIR's own
evaluator) for nDCG and recall; MRR@10 as BEIR computes it (1 / rank of the first relevant document in the top
10). Unlike BEIR, a query a method returns nothing for counts as 0 rather than dropping out of the mean.

The collection is deleted again afterwards (``keep=True`` leaves it): the RAG service searches the whole graph,
and its answers must not cite a benchmark. ``log_to_mlflow`` writes one run per evaluation, in the experiment
``retrieval-eval``, tagged with the dataset.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from llmship.rag.beir import BeirDataset, load_beir

EXPERIMENT = "retrieval-eval"
QUALITY_CHUNKS = 30  # chunks asked for the @10 metrics: enough for 10 distinct documents at ~3 chunks each
DEEP_CHUNKS = 300  # chunks asked for recall@100
LATENCY_TOP_K = 10
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


# ---- scoring ----------------------------------------------------------------------------------------------------

def doc_ranking(doc_ids: Sequence[str]) -> list[str]:
    """Documents in the order their first chunk appears (duplicates dropped)."""
    return list(dict.fromkeys(doc_ids))


def mrr_at(qrels: Mapping[str, int], ranking: Sequence[str], k: int = 10) -> float:
    """1 / rank of the first relevant (grade > 0) document within the first ``k``, else 0."""
    for rank, doc in enumerate(ranking[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean nDCG@10, recall@10, recall@100 and MRR@10 over every judged query of ``qrels``; ``run`` maps a query
    id to its ranked document ids (a missing or empty ranking scores 0)."""
    import pytrec_eval

    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    if not judged:
        raise ValueError("no judged queries to score")
    scored = {q: {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}
              for q, ranking in run.items() if q in judged and ranking}
    per_query: dict[str, dict[str, float]] = {}
    if scored:
        evaluator = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10", "recall.100"})
        per_query = evaluator.evaluate(scored)
    totals = dict.fromkeys(METRICS, 0.0)
    for q, grades in judged.items():
        found = per_query.get(q)
        if found:
            totals["ndcg@10"] += found["ndcg_cut_10"]
            totals["recall@10"] += found["recall_10"]
            totals["recall@100"] += found["recall_100"]
        totals["mrr@10"] += mrr_at(grades, run.get(q) or ())
    return {name: value / len(judged) for name, value in totals.items()}


# ---- the report -------------------------------------------------------------------------------------------------

class MethodResult(BaseModel):
    name: str
    kind: str  # "mode" (llmship's retriever) or "peer"
    metrics: dict[str, float]
    p50_ms: float | None = None
    p95_ms: float | None = None


class RetrievalEvalReport(BaseModel):
    dataset: str
    split: str
    documents: int
    chunks: int
    queries: int
    methods: dict[str, MethodResult]
    default_mode: str = "hybrid"
    load_s: float = 0.0
    seconds: float = 0.0

    def best(self, kind: str, exclude: Sequence[str] = ()) -> MethodResult | None:
        pool = [m for m in self.methods.values() if m.kind == kind and m.name not in exclude]
        return max(pool, key=lambda m: m.metrics["ndcg@10"], default=None)

    def metrics(self) -> dict[str, float]:
        """Flat names for MLflow (``ndcg_at_10.hybrid``, ``latency_p95_ms.dense`` ...)."""
        out: dict[str, float] = {}
        for m in self.methods.values():
            for name, value in m.metrics.items():
                out[f"{name.replace('@', '_at_')}.{m.name}"] = value
            if m.p95_ms is not None:
                out[f"latency_p50_ms.{m.name}"] = m.p50_ms or 0.0
                out[f"latency_p95_ms.{m.name}"] = m.p95_ms
        return out

    def table(self) -> str:
        head = f"{'method':<26} {'nDCG@10':>8} {'R@10':>6} {'R@100':>6} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}"
        title = (f"{self.dataset} ({self.split}): {self.documents} documents, {self.chunks} chunks, "
                 f"{self.queries} queries")
        lines = [title, head, "-" * len(head)]
        for m in self.methods.values():
            label = m.name + (" (default)" if m.name == self.default_mode else "") + \
                (" [peer]" if m.kind == "peer" else "")
            lat = (f"{m.p50_ms:>7.1f} {m.p95_ms:>7.1f}" if m.p95_ms is not None else f"{'':>7} {'':>7}")
            x = m.metrics
            lines.append(f"{label:<26} {x['ndcg@10']:>8.3f} {x['recall@10']:>6.3f} {x['recall@100']:>6.3f} "
                         f"{x['mrr@10']:>7.3f} {lat}")
        default = self.methods.get(self.default_mode)
        # the single searches: the fused modes (hybrid, graph, which is hybrid plus entities) are what they must beat
        best_mode = self.best("mode", exclude=("hybrid", "graph"))
        best_peer = self.best("peer")
        if default is not None and best_mode is not None:
            lines.append(f"default - best single mode ({best_mode.name}): "
                         f"{default.metrics['ndcg@10'] - best_mode.metrics['ndcg@10']:+.3f} nDCG@10")
        if default is not None and best_peer is not None:
            lines.append(f"default - best peer ({best_peer.name}): "
                         f"{default.metrics['ndcg@10'] - best_peer.metrics['ndcg@10']:+.3f} nDCG@10")
        return "\n".join(lines)


class RetrievalEvalConfig(BaseModel):
    """What ``llmship eval retrieval`` and the ``evaluate_retrieval`` step run."""

    beir: str  # a BEIR-format folder
    split: str = "test"
    modes: list[str] = ["dense", "keyword", "hybrid", "graph"]
    peers: bool = True
    keep: bool = False  # leave the collection in the graph afterwards
    max_queries: int | None = Field(default=None, ge=1)  # the first N judged queries (a quick look)
    embed_threads: int = 1
    log_mlflow: bool = True


# ---- running it -------------------------------------------------------------------------------------------------

def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


async def _evaluate_modes(retriever: Any, timing: Any, dataset: BeirDataset, modes: Sequence[str],
                          collection: str | None) -> dict[str, MethodResult]:
    out: dict[str, MethodResult] = {}
    for mode in modes:
        shallow: dict[str, list[str]] = {}
        deep: dict[str, list[str]] = {}
        times: list[float] = []
        for qid, text in dataset.queries.items():
            started = time.perf_counter()
            await timing.retrieve(text, top_k=LATENCY_TOP_K, mode=mode, collection=collection)
            times.append((time.perf_counter() - started) * 1000)
            found = await retriever.retrieve(text, top_k=QUALITY_CHUNKS, mode=mode, collection=collection)
            shallow[qid] = doc_ranking([dataset.corpus_id(c.doc_id) for c in found])
            found = await retriever.retrieve(text, top_k=DEEP_CHUNKS, mode=mode, collection=collection)
            deep[qid] = doc_ranking([dataset.corpus_id(c.doc_id) for c in found])
        metrics = score_run(dataset.qrels, shallow)
        metrics["recall@100"] = score_run(dataset.qrels, deep)["recall@100"]
        out[mode] = MethodResult(name=mode, kind="mode", metrics=metrics, p50_ms=_percentile(times, 50),
                                 p95_ms=_percentile(times, 95))
    return out


def bm25_peer(dataset: BeirDataset, depth: int = 100) -> MethodResult:
    """BM25 with ``bm25s`` over whole documents (English stop words, Snowball stemmer)."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = [dataset.corpus_id(d.id) for d in dataset.documents]
    index = bm25s.BM25()
    index.index(bm25s.tokenize([d.text for d in dataset.documents], stopwords="en", stemmer=stemmer,
                               show_progress=False), show_progress=False)
    run: dict[str, list[str]] = {}
    times = []
    k = min(depth, len(ids))
    for qid, text in dataset.queries.items():
        started = time.perf_counter()
        tokens = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
        docs, scores = index.retrieve(tokens, k=k, show_progress=False)
        times.append((time.perf_counter() - started) * 1000)
        run[qid] = [ids[i] for i, s in zip(docs[0], scores[0], strict=True) if s > 0]
    return MethodResult(name="bm25s", kind="peer", metrics=score_run(dataset.qrels, run),
                        p50_ms=_percentile(times, 50), p95_ms=_percentile(times, 95))


def exact_dense_peer(dataset: BeirDataset, embedder: Any, cache: Any, depth: int = 100) -> MethodResult:
    """Exact cosine search with the same embedder over whole documents (truncated), no index, no chunks."""
    from llmship.knowledge.cache import embed_with_cache

    class _Truncating:  # the cache keys by (model, text hash); a truncated embedding is still a pure function
        model_id = embedder.model_id

        @staticmethod
        def embed(texts: list[str]):
            return embedder.embed(texts, truncate=True)

    vectors, _ = embed_with_cache(_Truncating(), {d.hash: d.text for d in dataset.documents}, cache=cache)
    matrix = np.stack([vectors[d.hash] for d in dataset.documents])
    ids = [dataset.corpus_id(d.id) for d in dataset.documents]
    queries = list(dataset.queries.items())
    qvecs = embedder.embed([text for _, text in queries]).vectors
    run = {}
    for (qid, _), vec in zip(queries, qvecs, strict=True):
        sims = matrix @ vec
        top = np.argsort(-sims, kind="stable")[:depth]
        run[qid] = [ids[i] for i in top]
    return MethodResult(name="exact-dense-docs", kind="peer", metrics=score_run(dataset.qrels, run))


def remove_collection(graph: Any, prefix: str) -> tuple[int, int]:
    """Delete every chunk and document whose id starts with ``prefix``; returns (chunks, documents) deleted."""
    chunks = [cid for cid in graph.chunk_hashes() if cid.startswith(prefix)]
    docs = [did for did in graph.document_hashes() if did.startswith(prefix)]
    return graph.delete_chunks(chunks), graph.delete_documents(docs)


def load_collection(dataset: BeirDataset, graph: Any, embedder: Any, cache: Any, batch_size: int = 64) -> Any:
    """Chunk, embed (through ``cache``) and write the dataset's documents under its collection, as
    ``embedding_refresh`` does with a folder (the plan scoped to the collection); returns the chunked corpus."""
    from llmship.knowledge.ingest import embedding_refresh as er

    corpus = er.corpus_from_documents(dataset.documents, er.ChunkingConfig(), embedder)
    refresh = er.plan(corpus, graph, scope=dataset.collection + "/")
    er.embed_planned(corpus, refresh, embedder, cache, batch_size)
    er.apply_plan(corpus, refresh, graph, cache, embedder.model_id)
    return corpus


def run_retrieval_eval(config: RetrievalEvalConfig, graph: Any = None) -> tuple[RetrievalEvalReport, str | None]:
    """Load, evaluate, compare with the peers, clean up (see the module docstring); returns the report and the
    MLflow run id (None when not logged)."""
    from llmship.knowledge.graphstore.graph import GraphStore
    from llmship.knowledge.ingest import embedding_refresh as er
    from llmship.knowledge.retrieval.retriever import MODES, Retriever

    unknown = [m for m in config.modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown retrieval mode {unknown[0]!r}; use some of {', '.join(MODES)}")
    started = time.perf_counter()
    dataset = load_beir(config.beir, config.split)
    if config.max_queries:
        keep = list(dataset.queries)[:config.max_queries]
        dataset = dataset.model_copy(update={"queries": {q: dataset.queries[q] for q in keep},
                                             "qrels": {q: dataset.qrels[q] for q in keep}})
    embed = er.EmbedConfig(threads=config.embed_threads)
    embedder = er.load_embedder(embed)
    own = graph is None
    graph = graph or GraphStore.connect()
    prefix = dataset.collection + "/"
    try:
        with er.open_cache(embed) as cache:
            corpus = load_collection(dataset, graph, embedder, cache, embed.batch_size)
            load_s = time.perf_counter() - started
            others = any(not did.startswith(prefix) for did in graph.document_hashes())
            collection = dataset.collection if others else None  # alone in the graph: no filter, as served
            retriever = Retriever(graph, embedder)
            timing = Retriever(graph, embedder, cache_size=0, reranker=retriever.reranker,
                               keyword_index=retriever.keyword_index)  # one index for both, built once
            retriever.keyword_index.get(wait=True)  # scored and timed on the keyword index that serves, not its fallback
            methods = asyncio.run(_evaluate_modes(retriever, timing, dataset, config.modes, collection))
            if config.peers:
                methods["bm25s"] = bm25_peer(dataset)
                methods["exact-dense-docs"] = exact_dense_peer(dataset, embedder, cache)
        report = RetrievalEvalReport(dataset=dataset.name, split=dataset.split, documents=len(dataset.documents),
                                     chunks=corpus.chunk_count, queries=len(dataset.queries), methods=methods,
                                     load_s=load_s, seconds=time.perf_counter() - started)
    finally:
        try:
            if not config.keep:
                remove_collection(graph, prefix)
        finally:
            if own:
                graph.close()
    run_id = log_to_mlflow(report, params={"beir": config.beir, "modes": ",".join(config.modes),
                                           "reranker": getattr(retriever.reranker, "name", "none")}) \
        if config.log_mlflow else None
    return report, run_id


def log_to_mlflow(report: RetrievalEvalReport, *, params: dict[str, Any] | None = None,
                  tracking_uri: str | None = None) -> str:
    """One MLflow run in experiment ``retrieval-eval``: metrics, params, the report as ``retrieval_eval.json``."""
    import mlflow

    from llmship.registry import ModelRegistry

    experiment_id = ModelRegistry(tracking_uri).ensure_experiment(EXPERIMENT)
    name = f"{report.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.log_params({"dataset": report.dataset, "split": report.split, "documents": report.documents,
                           "chunks": report.chunks, "queries": report.queries, **(params or {})})
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(report.model_dump(mode="json"), "retrieval_eval.json")
        mlflow.set_tags({"dataset": report.dataset})
        return run.info.run_id
