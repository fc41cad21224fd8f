"""RAG benchmarks on a throw-away embedded ArcadeDB, one server, one run.

    python benchmarks/rag_bench.py [--sizes 10000,100000] [--queries 200] [--json results.json]
    python benchmarks/rag_bench.py --sizes "" --rag-url http://127.0.0.1:3001     # the TTFT section alone

Section "retrieval latency" (``retrieval_latency``): the issue's "retrieval p50/p95 at 10k and 100k chunks;
target p95 <= 50 ms at 100k". One database is grown to each size in turn (10k chunks, then 90k more to reach
100k: never rebuilt), through the same ``GraphStore`` schema (``ensure_schema``: the ``LSM_VECTOR`` cosine index
and the ``FULL_TEXT`` index that embedding_refresh uses) and writes (``upsert_chunks``, ``upsert_documents``,
``UNWIND`` batches). At each size the real ``Retriever`` answers the same seeded queries:

- ``dense`` / ``keyword`` / ``hybrid`` with no reranker (hybrid without one is the service's default, so the
  issue's target is judged on that row), and ``hybrid`` with the ``embedding`` re-score (the earlier default);
- ``vector_search`` / ``keyword_search`` alone (the ``GraphStore`` index calls, no chunk read, no fusion) and
  ``GraphStore.chunks`` of a 40-id pool with embeddings (what the reranker reads), to show where the time goes;
- hybrid (the service's default) ``--concurrency`` (8) queries at a time (``asyncio.gather``), in queries/s;
- the peer, in the same process: exact cosine top-k in numpy over the same N float32 vectors in memory
  (``matrix @ q``, ``argpartition``), and the ANN index's recall@k against that exact top-k.

Each row: ``--warmup`` (20) queries first, then every query once, sequentially, timed with ``perf_counter``
around ``await retriever.retrieve(q, top_k, mode)``. ArcadeDB builds the vector index's HNSW graph in the
background: vectors written since the last build sit in a delta buffer that every query scans by brute force, and
the first query on a never-built index blocks until the first build is done. So after each growth the benchmark
times the first vector query, then polls the index's counters (``SELECT FROM schema:index:`Chunk[embedding]```)
until the graph covers every write (``--settle-timeout``), reports that time, and only then measures.

The data is synthetic (seeded): a Zipf-distributed vocabulary of 5,000 made-up words, ``--topics`` (200) topics
each with 3 topic words of its own; a chunk is 60-120 words with 2 of its topic's words mixed in, its embedding a
unit float32 vector near its topic's random centroid (so nearest neighbours mean something). A query is a topic's
centroid plus noise and the text "<two topic words> <one vocabulary word>".

Real-length queries (issue 15: a three-word query says nothing about a pasted claim's keyword cost): with
``--text-from <BEIR folder>`` (default ``../shared/data/scifact-dev`` when it is there; read by path, nothing
copied) a chunk's words are a 60-120-word window of that folder's documents instead of made-up ones (cycled to
reach the size, the 2 topic words still mixed in), so term frequencies and posting lists are those of real text.
Two more query sets are then timed (keyword, hybrid, hybrid + the embedding re-score): ``claims``, the folder's own
queries (SciFact's claims, ~12 words), and ``sampled``, 12-40 consecutive words cut from stored chunks (a pasted
passage); their vectors are drawn like the synthetic queries'.

What is *not* measured: the query embedding. The measured thing is graph retrieval, so each query's synthetic
vector is put in the retriever's own query-vector LRU (``Retriever._cache``, ``_EmbeddingCache.put``) before
it runs: ``embed_query`` then takes its normal cache-hit path, exactly what a repeated query costs in
production. That is cleaner than a dictionary-backed stand-in embedder (which would be a second, fake code path
behind the real one); the embedder given to the ``Retriever`` raises if it is ever reached, and every row checks
that the cache had no misses. A fresh query adds one MiniLM embedding on top (not measured here).

ArcadeDB's JVM heap is ``--heap`` (exported as ``LLMSHIP_GRAPH_HEAP``, which ``llmship.knowledge.graphstore.server``
reads; default: the server's own, ``server.default_heap()``: a quarter of RAM within 1-4 GiB).

Section "end-to-end TTFT" (``e2e_ttft``, with ``--rag-url``): against the running services, RAG answer TTFT next
to the chat model's TTFT for the bare question and for the same grounded prompt. Each section is stored under its
own key in the ``--json`` output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.knowledge_bench import embedded_graph
from llmship.knowledge.graphstore.graph import GraphStore
from llmship.knowledge.graphstore.server import default_heap
from llmship.knowledge.retrieval import keywords
from llmship.knowledge.retrieval.keywords import STOP_WORDS
from llmship.knowledge.retrieval.rerank import make_reranker
from llmship.knowledge.retrieval.retriever import Retriever

DIMS = 384
DEFAULT_TEXT = str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact-dev")
TARGET_P95_MS = 50.0
TARGET_P95_REAL_MS = 80.0  # issue 15: real-length queries (claims, passages) at 100k chunks
TARGET_SIZE = 100_000
CHUNKS_PER_DOC = 10
TOPIC_WORDS = 3
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


# ---- synthetic data ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticQuery:
    text: str
    vector: np.ndarray  # float32, unit length
    topic: int


class SyntheticCorpus:
    """Seeded chunks on demand: ``rows(start, stop)`` is the same for the same indexes, whatever was asked before,
    so a database grown 0→10k→100k holds exactly the chunks a direct 0→100k would."""

    def __init__(self, seed: int = 0, dims: int = DIMS, topics: int = 200, vocab: int = 5000,
                 chunk_noise: float = 1.0, query_noise: float = 0.8, texts: Sequence[str] = ()) -> None:
        self.seed, self.dims, self.topics = seed, dims, topics
        self.texts = [t.split() for t in texts]  # real text windows (``--text-from``): chunk i holds texts[i % n]
        self.chunk_noise, self.query_noise = chunk_noise, query_noise
        rng = np.random.default_rng([seed, 0])
        words = _words(rng, vocab + topics * TOPIC_WORDS)
        self.vocab = np.array(words[:vocab])
        self.topic_words = np.array(words[vocab:]).reshape(topics, TOPIC_WORDS)
        zipf = 1.0 / np.arange(1, vocab + 1) ** 1.07
        self.word_p = zipf / zipf.sum()
        self.centroids = _unit(rng.standard_normal((topics, dims)).astype(np.float32))

    def _near(self, rng: np.random.Generator, topics: np.ndarray, noise: float) -> np.ndarray:
        """Unit vectors around the topics' centroids; ``noise`` is the expected norm of the offset."""
        offset = rng.standard_normal((len(topics), self.dims)).astype(np.float32) * (noise / np.sqrt(self.dims))
        return _unit(self.centroids[topics] + offset)

    def rows(self, start: int, stop: int) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Chunk rows ``start..stop-1`` for ``GraphStore.upsert_chunks`` and their embeddings (float32)."""
        rng = np.random.default_rng([self.seed, 1, start, stop])
        n = stop - start
        topics = rng.integers(self.topics, size=n)
        vectors = self._near(rng, topics, self.chunk_noise)
        lengths = rng.integers(60, 121, size=n)
        words = self.vocab[rng.choice(len(self.vocab), size=int(lengths.sum()), p=self.word_p)]
        ends = np.cumsum(lengths)
        rows = []
        for j, i in enumerate(range(start, stop)):
            text = list(self.texts[i % len(self.texts)]) if self.texts else list(words[ends[j] - lengths[j]:ends[j]])
            for word in rng.choice(self.topic_words[topics[j]], size=2, replace=False):
                text.insert(int(rng.integers(len(text) + 1)), str(word))
            rows.append({"id": chunk_id(i), "doc_id": f"d{i // CHUNKS_PER_DOC:06d}", "seq": i % CHUNKS_PER_DOC,
                         "text": " ".join(text).capitalize() + ".", "hash": f"h{self.seed}-{i}",
                         "embedding": vectors[j]})
        return rows, vectors

    def queries(self, n: int) -> list[SyntheticQuery]:
        rng = np.random.default_rng([self.seed, 2])
        topics = rng.integers(self.topics, size=n)
        vectors = self._near(rng, topics, self.query_noise)
        out: dict[str, SyntheticQuery] = {}  # unique texts: the query-vector LRU is keyed by text
        for j, t in enumerate(topics):
            while True:
                words = [*rng.choice(self.topic_words[t], size=2, replace=False), rng.choice(self.vocab)]
                text = " ".join(map(str, words))
                if text not in out:
                    break
            out[text] = SyntheticQuery(text=text, vector=vectors[j], topic=int(t))
        return list(out.values())

    def real_queries(self, texts: Sequence[str]) -> list[SyntheticQuery]:
        """Real-length query texts (a BEIR folder's claims), each with a vector near a seeded topic: the keyword
        side sees the real text, the vector side the same kind of query as the synthetic ones."""
        rng = np.random.default_rng([self.seed, 3])
        topics = rng.integers(self.topics, size=len(texts))
        vectors = self._near(rng, topics, self.query_noise)
        unique = dict.fromkeys(texts)
        return [SyntheticQuery(text=t, vector=vectors[j], topic=int(topics[j])) for j, t in enumerate(unique)]

    def sampled_queries(self, n: int, size: int, words: tuple[int, int] = (12, 40)) -> list[SyntheticQuery]:
        """``n`` queries of 12-40 consecutive words cut from stored chunks (of the first ``size``), each with a
        vector near its chunk's topic: a user pasting a passage."""
        rng = np.random.default_rng([self.seed, 4])
        out: dict[str, SyntheticQuery] = {}
        while len(out) < n:
            i = int(rng.integers(size))
            rows, _ = self.rows(i, i + 1)
            tokens = rows[0]["text"].split()
            length = min(len(tokens), int(rng.integers(words[0], words[1] + 1)))
            begin = int(rng.integers(len(tokens) - length + 1))
            text = " ".join(tokens[begin:begin + length])
            topic = int(np.argmax(self.centroids @ rows[0]["embedding"]))
            out.setdefault(text, SyntheticQuery(text=text, vector=self._near(rng, np.array([topic]),
                                                                             self.query_noise)[0], topic=topic))
        return list(out.values())


def text_windows(folder: str, split: str = "test", words: tuple[int, int] = (60, 120), seed: int = 0
                 ) -> tuple[list[str], list[str]]:
    """Chunk-sized windows (60-120 words) of a BEIR folder's documents, read by path (nothing is copied), and
    its queries' texts: real vocabulary and real posting-list lengths under the synthetic vectors."""
    from llmship.rag.beir import load_beir

    dataset = load_beir(folder, split)
    rng = np.random.default_rng([seed, 5])
    windows = []
    for doc in dataset.documents:
        tokens = doc.text.split()
        while tokens:
            cut = int(rng.integers(words[0], words[1] + 1))
            windows.append(" ".join(tokens[:cut]))
            tokens = tokens[cut:]
    return windows, list(dataset.queries.values())


def chunk_id(i: int) -> str:
    return f"c{i:07d}"


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct made-up lower-case words of 4-9 letters, none a retriever stop word."""
    seen: dict[str, None] = {}
    while len(seen) < n:
        word = "".join(rng.choice(_LETTERS, size=int(rng.integers(4, 10))))
        if word not in STOP_WORDS:
            seen.setdefault(word)
    return list(seen)


# ---- measuring --------------------------------------------------------------------------------------------------


class _NotAnEmbedder:
    """Every query vector is in the retriever's LRU before the query runs; reaching this is a benchmark bug."""

    model_id = "synthetic"

    def embed(self, texts: Sequence[str]):
        raise RuntimeError(f"query {texts[0]!r} has no precomputed vector (the query-vector LRU evicted it?)")


def stats(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "n": len(a)}


def _timed_sync(fn, items: Sequence[Any], warmup: int) -> list[float]:
    for item in items[:warmup]:
        fn(item)
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(1000 * (time.perf_counter() - t0))
    return out


async def _timed_retrieve(retriever: Retriever, queries: Sequence[SyntheticQuery], mode: str, top_k: int,
                          warmup: int) -> tuple[list[float], list[list[str]]]:
    for q in queries[:warmup]:
        await retriever.retrieve(q.text, top_k=top_k, mode=mode)
    times, ids = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = await retriever.retrieve(q.text, top_k=top_k, mode=mode)
        times.append(1000 * (time.perf_counter() - t0))
        ids.append([h.chunk_id for h in hits])
    return times, ids


async def _throughput(retriever: Retriever, queries: Sequence[SyntheticQuery], mode: str, top_k: int,
                      concurrency: int, warmup: int) -> float:
    """Queries/s with ``concurrency`` in flight at a time (``asyncio.gather`` of each group)."""
    await asyncio.gather(*(retriever.retrieve(q.text, top_k=top_k, mode=mode) for q in queries[:warmup]))
    t0 = time.perf_counter()
    for start in range(0, len(queries), concurrency):
        await asyncio.gather(*(retriever.retrieve(q.text, top_k=top_k, mode=mode)
                               for q in queries[start:start + concurrency]))
    return len(queries) / (time.perf_counter() - t0)


def exact_top_k(matrix: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The peer: brute-force cosine (unit vectors: a dot product) top-k row indexes, best first."""
    scores = matrix @ q
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


VECTOR_INDEX_STATS = "SELECT FROM schema:index:`Chunk[embedding]`"  # ArcadeDB: LSM_VECTOR state and counters


def vector_index_state(graph: GraphStore) -> dict[str, Any]:
    """The ArcadeDB vector index's counters that say whether its HNSW graph covers the data: ``graphNodeCount``,
    ``deltaVectorsCount`` (vectors written since the last graph build, answered by a brute-force delta scan),
    ``mutationsSinceRebuild``, ``asyncRebuildInProgress``, ``graphRebuildCount``, ``rebuildsDeferredForMemory``,
    ``unreachableGraphNodes``. A fixed schema read over the HTTP API (``ArcadeDialect.sql``)."""
    keys = ("graphNodeCount", "deltaVectorsCount", "mutationsSinceRebuild", "asyncRebuildInProgress",
            "graphRebuildCount", "rebuildsDeferredForMemory", "unreachableGraphNodes", "activeVectors")
    rows = graph.dialect.sql(VECTOR_INDEX_STATS)
    return {k: rows[0].get(k) for k in keys} if rows else {}


def wait_for_vector_index(graph: GraphStore, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
    """Poll until the vector index's graph covers every write (no rebuild running, no mutation since the last
    one) — ArcadeDB builds it in the background (15 s after the last write, or when a query finds too much in
    the delta buffer). Returns the seconds waited, whether it settled, and the final counters."""
    t0 = time.perf_counter()
    while True:
        state = vector_index_state(graph)
        settled = (state.get("asyncRebuildInProgress") == 0 and state.get("mutationsSinceRebuild") == 0
                   and (state.get("graphNodeCount") or 0) > 0)
        waited = time.perf_counter() - t0
        if settled or waited >= timeout_s:
            return {"settle_s": waited, "settled": settled, **state}
        time.sleep(poll_s)


def grow(graph: GraphStore, corpus: SyntheticCorpus, start: int, stop: int, matrix: np.ndarray,
         step: int = 10_000) -> dict[str, float]:
    """Write chunks ``start..stop-1`` (with embeddings) and their documents; fills ``matrix`` rows. Seconds."""
    t0 = time.perf_counter()
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        rows, vectors = corpus.rows(lo, hi)
        matrix[lo:hi] = vectors
        graph.upsert_chunks(rows)
        first_doc, last_doc = lo // CHUNKS_PER_DOC, (hi - 1) // CHUNKS_PER_DOC
        graph.upsert_documents([{"id": f"d{d:06d}", "hash": f"dh{d}", "title": f"Synthetic document {d}",
                                 "source": "rag_bench"} for d in range(first_doc, last_doc + 1)])
        print(f"  wrote chunks {lo:,}-{hi - 1:,} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return {"write_s": time.perf_counter() - t0, "rows": stop - start}


async def _measure_size(graph: GraphStore, size: int, matrix: np.ndarray, queries: Sequence[SyntheticQuery], *,
                        top_k: int, warmup: int, concurrency: int,
                        real: dict[str, Sequence[SyntheticQuery]] | None = None,
                        max_dfs: Sequence[float] = (keywords.MAX_DF,)) -> list[dict[str, Any]]:
    real = real or {}
    vectors = {q.text: q.vector for q in [*queries, *(q for qs in real.values() for q in qs)]}
    plain = Retriever(graph, _NotAnEmbedder(), cache_size=len(vectors) + 1, reranker=None)
    retrievers = {"none": plain,
                  "embedding": Retriever(graph, _NotAnEmbedder(), cache_size=len(vectors) + 1,
                                         reranker=make_reranker("embedding"),
                                         keyword_index=plain.keyword_index)}  # one graph, one index, built once
    started = time.perf_counter()
    retrievers["none"].keyword_index.get(wait=True)  # the keyword side's index and IDF statistics
    keyword_index_s = time.perf_counter() - started
    for r in retrievers.values():
        for text, vector in vectors.items():
            r._cache.put(text, vector)  # see the module docstring: graph retrieval is what is measured

    n = max(top_k * 4, 20)  # what the Retriever asks each index for
    rows: list[dict[str, Any]] = [{"size": size, "kind": "keyword_index", "build_s": keyword_index_s,
                                   "note": "read every chunk's id and text, build the in-memory BM25 index"}]

    def row(mode: str, reranker: str, times: Sequence[float], queries: str = "synthetic", **extra: Any) -> None:
        rows.append({"size": size, "kind": "latency", "mode": mode, "reranker": reranker, "queries": queries,
                     **stats(times), **extra})

    row("vector_search only", "-", _timed_sync(lambda q: graph.vector_search(q.vector, n), queries, warmup),
        note=f"GraphStore index call, k={n}")
    row("keyword_search only", "-", _timed_sync(lambda q: graph.keyword_search(q.text, n), queries, warmup),
        note=f"GraphStore index call, k={n}")
    pools = {q.text: [chunk_id(int(i)) for i in exact_top_k(matrix[:size], q.vector, 2 * n)] for q in queries}
    row("chunks() read only", "-", _timed_sync(lambda q: graph.chunks(pools[q.text]), queries, warmup),
        note=f"GraphStore.chunks of {2 * n} ids with embeddings (a reranked hybrid pool is up to {2 * n})")
    dense_ids: list[list[str]] = []
    for mode, reranker in (("dense", "none"), ("keyword", "none"), ("hybrid", "none"), ("hybrid", "embedding")):
        times, ids = await _timed_retrieve(retrievers[reranker], queries, mode, top_k, warmup)
        row(mode, reranker, times, note=f"Retriever.retrieve, top_k={top_k}")
        if mode == "dense":
            dense_ids = ids
    for name, qs in real.items():
        words = np.mean([len(q.text.split()) for q in qs])
        for max_df in max_dfs:
            keywords.MAX_DF = max_df
            terms = np.mean([len(retrievers["none"].keyword_terms(q.text)) for q in qs])
            combos = (("keyword", "none"), ("hybrid", "none"), ("hybrid", "embedding"))
            for mode, reranker in combos if max_df == max_dfs[0] else combos[:2]:
                times, _ = await _timed_retrieve(retrievers[reranker], qs, mode, top_k, min(warmup, len(qs)))
                row(mode, reranker, times, queries=name if max_df == max_dfs[0] else f"{name}@{max_df:g}",
                    note=f"{len(qs)} queries of {words:.0f} words, {terms:.1f} keyword terms on average "
                         f"(max_df {max_df:g})")
        keywords.MAX_DF = max_dfs[0]
        # peer: the graph's full-text index with the same planned terms (what answers until the in-memory index is
        # built, and what every keyword search went to before it)
        row("keyword_search only", "-",
            _timed_sync(lambda q: graph.keyword_search(" ".join(retrievers["none"].keyword_terms(q.text)), n), qs,
                        min(warmup, len(qs))),
            queries=name, note=f"peer: GraphStore full-text index call, k={n}, the same terms")
    for reranker, r in retrievers.items():
        info = r.cache_info()
        if info.misses:
            raise SystemExit(f"the query-vector LRU missed {info.misses} times ({reranker}): not a graph-only figure")

    peer_times = _timed_sync(lambda q: exact_top_k(matrix[:size], q.vector, top_k), queries, warmup)
    row("numpy exact top-k", "-", peer_times, note=f"peer: brute-force cosine over {size:,} x {DIMS} float32")
    exact = [{chunk_id(int(i)) for i in exact_top_k(matrix[:size], q.vector, top_k)} for q in queries]
    recall = float(np.mean([len(exact[j] & set(ids)) / top_k for j, ids in enumerate(dense_ids)]))
    rows.append({"size": size, "kind": "recall", "mode": "dense", "recall_at_k": recall, "k": top_k,
                 "note": "ANN (LSM_VECTOR) dense top-k vs exact numpy top-k"})

    sequential = next(r for r in rows if r.get("mode") == "hybrid" and r.get("reranker") == "none")
    qps = await _throughput(retrievers["none"], queries, "hybrid", top_k, concurrency, warmup)
    rows.append({"size": size, "kind": "throughput", "mode": "hybrid", "reranker": "none",
                 "concurrency": concurrency, "qps": qps, "sequential_qps": 1000 / sequential["mean_ms"]})
    return rows


def retrieval_latency(sizes: Sequence[int], queries: Sequence[SyntheticQuery], *, corpus: SyntheticCorpus,
                      top_k: int = 5, warmup: int = 20, concurrency: int = 8, batch_size: int = 1000,
                      settle_timeout_s: float = 600.0, claims: Sequence[str] = (),
                      max_dfs: Sequence[float] = (keywords.MAX_DF,)) -> list[dict[str, Any]]:
    """The retrieval section (see the module docstring): one embedded ArcadeDB grown to each of ``sizes`` in
    turn; per size a ``write`` row, an ``index`` row (the first vector query right after the writes, and how
    long the vector index took to settle: its HNSW graph is built in the background), ``latency`` rows (per mode,
    the index calls alone and the numpy peer), a ``recall`` row, a ``throughput`` row and a ``load`` row.
    Latencies are measured once the index has settled (or ``settle_timeout_s`` passed; the ``index`` row says)."""
    sizes = sorted(sizes)
    matrix = np.zeros((sizes[-1], corpus.dims), dtype=np.float32)
    rows: list[dict[str, Any]] = []
    with embedded_graph(batch_size) as graph:
        graph.ensure_schema(dimensions=corpus.dims)  # embedded_graph ran it with the default; same 384 here
        have = 0
        for size in sizes:
            print(f"growing the graph {have:,} -> {size:,} chunks", flush=True)
            written = grow(graph, corpus, have, size, matrix)
            have = size
            counts = graph.counts()
            if counts["Chunk"] != size:
                raise SystemExit(f"the graph holds {counts['Chunk']} chunks, expected {size}")
            rows.append({"size": size, "kind": "write", **written,
                         "rows_per_s": written["rows"] / written["write_s"], "documents": counts["Document"]})
            before = vector_index_state(graph)
            t0 = time.perf_counter()
            graph.vector_search(queries[0].vector, max(top_k * 4, 20))
            first_s = time.perf_counter() - t0
            print(f"  first vector query after the writes: {first_s:.2f}s (index before it: {before})", flush=True)
            index = wait_for_vector_index(graph, settle_timeout_s)
            rows.append({"size": size, "kind": "index", "first_query_s": first_s, "before_first_query": before,
                         **index})
            print(f"  vector index {'settled' if index['settled'] else 'NOT settled'} {index['settle_s']:.1f}s after "
                  f"the first query: {index['graphNodeCount']} graph nodes, {index['deltaVectorsCount']} in the "
                  f"delta buffer", flush=True)
            print(f"measuring at {size:,} chunks ({len(queries)} queries, warm-up {warmup}; load average "
                  f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
            load_before = os.getloadavg()
            real = {}
            if claims:
                real["claims"] = corpus.real_queries(claims)
            if corpus.texts:
                real["sampled"] = corpus.sampled_queries(len(queries), size)
            rows += asyncio.run(_measure_size(graph, size, matrix, queries, top_k=top_k, warmup=warmup,
                                              concurrency=concurrency, real=real, max_dfs=max_dfs))
            rows.append({"size": size, "kind": "load", "before": load_before, "after": os.getloadavg(),
                         "note": "os.getloadavg() (1, 5, 15 min) around the measurements; the machine is shared"})
    return rows


# ---- printing ---------------------------------------------------------------------------------------------------


def _target(row: dict[str, Any]) -> float:
    return TARGET_P95_MS if row.get("queries", "synthetic") == "synthetic" else TARGET_P95_REAL_MS


def print_retrieval(rows: Sequence[dict[str, Any]]) -> None:
    print(f"\nretrieval latency (target p95 at {TARGET_SIZE:,} chunks: <= {TARGET_P95_MS:.0f} ms with the synthetic "
          f"queries, <= {TARGET_P95_REAL_MS:.0f} ms with real-length ones)")
    print(f"{'size':>8}  {'mode':<20} {'reranker':<8} {'queries':<9} {'p50 ms':>7} {'p95 ms':>7} {'mean':>7}  "
          f"{'p95 target':<10} note")
    for r in rows:
        if r["kind"] != "latency":
            continue
        judged = r["mode"] in ("dense", "keyword", "hybrid") and r["size"] >= TARGET_SIZE
        verdict = ("met" if r["p95_ms"] <= _target(r) else "missed") if judged else "-"
        print(f"{r['size']:>8}  {r['mode']:<20} {r['reranker']:<8} {r.get('queries', 'synthetic'):<9} "
              f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['mean_ms']:>7.1f}  {verdict:<10} {r.get('note', '')}")
    for size in sorted({r["size"] for r in rows}):
        at = [r for r in rows if r["size"] == size]
        lat = {(r["mode"], r["reranker"]): r for r in at if r["kind"] == "latency"
               and r.get("queries", "synthetic") == "synthetic"}
        write = next(r for r in at if r["kind"] == "write")
        index = next(r for r in at if r["kind"] == "index")
        load = next(r for r in at if r["kind"] == "load")
        recall = next(r for r in at if r["kind"] == "recall")
        tput = next(r for r in at if r["kind"] == "throughput")
        dense, peer = lat[("dense", "none")], lat[("numpy exact top-k", "-")]
        search = lat[("vector_search only", "-")]
        print(f"\n{size:,} chunks:")
        print(f"  write: {write['rows']:,} chunks (+ {write['documents']:,} documents in all) in {write['write_s']:.1f}s"
              f" = {write['rows_per_s']:.0f} chunks/s (UNWIND batches, vector + full-text indexes maintained)")
        before = index["before_first_query"]
        print(f"  vector index after the writes: {before.get('graphNodeCount')} vectors in its HNSW graph, "
              f"{before.get('deltaVectorsCount')} in the brute-force delta buffer; first dense query "
              f"{index['first_query_s']:.2f}s; {'settled' if index['settled'] else 'NOT SETTLED'} "
              f"{index['settle_s']:.1f}s later ({index['graphNodeCount']} in the graph, {index['deltaVectorsCount']} "
              f"in the delta buffer, {index['graphRebuildCount']} graph builds, "
              f"{index['rebuildsDeferredForMemory']} deferred for memory)")
        print(f"  load average (1/5/15 min) before / after measuring: "
              f"{'/'.join(f'{x:.1f}' for x in load['before'])} / {'/'.join(f'{x:.1f}' for x in load['after'])}")
        print(f"  dense p95 vs numpy exact p95: {dense['p95_ms']:.1f} / {peer['p95_ms']:.2f} ms = "
              f"{dense['p95_ms'] / peer['p95_ms']:.1f}x  (vector_search alone: {search['p95_ms'] / peer['p95_ms']:.1f}x)")
        print(f"  dense recall@{recall['k']} vs exact: {recall['recall_at_k']:.3f}")
        print(f"  hybrid (the service's default), {tput['concurrency']} at a time: {tput['qps']:.1f} queries/s vs "
              f"{tput['sequential_qps']:.1f} sequential ({tput['qps'] / tput['sequential_qps']:.2f}x)")
        built = next(r for r in at if r["kind"] == "keyword_index")
        print(f"  in-memory keyword index (all chunk texts read, BM25 built): {built['build_s']:.2f}s")
        real_lat = [r for r in at if r["kind"] == "latency" and r.get("queries", "synthetic") != "synthetic"]
        for full in (r for r in real_lat if r["mode"] == "keyword_search only"):
            mem = next(r for r in real_lat if r["mode"] == "keyword" and r["reranker"] == "none"
                       and r["queries"] == full["queries"])
            print(f"  keyword, {full['queries']} queries: the Retriever on its in-memory index p95 {mem['p95_ms']:.1f} ms"
                  f" vs the graph's full-text call alone {full['p95_ms']:.1f} ms ({full['p95_ms'] / mem['p95_ms']:.1f}x)")
    at_target = [r for r in rows if r["kind"] == "latency" and r["size"] >= TARGET_SIZE
                 and r["mode"] == "hybrid" and r["reranker"] == "none"]
    for r in at_target:
        print(f"\ntarget: hybrid, no reranker (the service's default retrieval), {r.get('queries', 'synthetic')} "
              f"queries, p95 {r['p95_ms']:.1f} ms at {r['size']:,} chunks: "
              f"{'met' if r['p95_ms'] <= _target(r) else 'MISSED'} (<= {_target(r):.0f} ms)")
    if not at_target:
        print(f"\ntarget: not judged (no size >= {TARGET_SIZE:,} was run)")


# ---- main -------------------------------------------------------------------------------------------------------


def _stream_ttft(client: Any, model: str, messages: list[dict[str, Any]], max_tokens: int) -> tuple[float, float]:
    """(ms to the first content token, ms to the end) of one streamed greedy chat completion."""
    started = time.perf_counter()
    first = None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                temperature=0, stream=True):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    end = time.perf_counter()
    return ((first or end) - started) * 1000, (end - started) * 1000


def e2e_ttft(rag_url: str, chat_url: str, questions: Sequence[str], max_tokens: int = 16) -> list[dict[str, Any]]:
    """End-to-end RAG answer TTFT against running services (``make deploy`` starts both; load the corpus with
    ``make refresh && make kg``), one request at a time, greedy, streamed, next to two peers on the same chat
    server: the bare question (no retrieval, a short prompt) and the grounded prompt RAG builds for that
    question (the same prefill, no retrieval and no extra hops). So RAG − grounded = retrieval + rerank + hops,
    grounded − bare = the cost of reading the sources. The first question warms every path and is not counted."""
    import httpx
    import openai

    from llmship.knowledge.retrieval.retriever import ScoredChunk
    from llmship.rag.prompt import grounded_messages, numbered_sources
    from llmship.rag.service import RagSettings

    rag_url, chat_url = rag_url.rstrip("/"), chat_url.rstrip("/")
    rag = openai.OpenAI(base_url=f"{rag_url}/v1", api_key="none", max_retries=0, timeout=600)
    chat = openai.OpenAI(base_url=f"{chat_url}/v1", api_key="none", max_retries=0, timeout=600)
    model = chat.models.list().data[0].id
    names = ("chat: question only", "chat: grounded prompt", "rag: retrieve + rerank + chat")
    ttft: dict[str, list[float]] = {n: [] for n in names}
    total: dict[str, list[float]] = {n: [] for n in names}
    retrieve_ms: list[float] = []
    for i, q in enumerate([questions[0], *questions]):
        started = time.perf_counter()
        found = httpx.post(f"{rag_url}/v1/retrieve", json={"query": q, "top_k": 5}, timeout=120)
        found.raise_for_status()
        took_ms = (time.perf_counter() - started) * 1000
        sources = numbered_sources([ScoredChunk.model_validate(c) for c in found.json()["data"]],
                                   RagSettings().max_context_chars)
        user = [{"role": "user", "content": q}]
        results = {names[0]: _stream_ttft(chat, model, user, max_tokens),
                   names[1]: _stream_ttft(chat, model, grounded_messages(user, sources), max_tokens),
                   names[2]: _stream_ttft(rag, "rag", user, max_tokens)}
        if i == 0:
            continue
        retrieve_ms.append(took_ms)
        for name, (first, end) in results.items():
            ttft[name].append(first)
            total[name].append(end)
    rows = [{"kind": "e2e", "path": name, "questions": len(ttft[name]), "ttft": stats(ttft[name]),
             "total": stats(total[name])} for name in names]
    rows.append({"kind": "e2e", "path": "rag /v1/retrieve (HTTP, embed+search+rerank)", "questions": len(retrieve_ms),
                 "ttft": stats(retrieve_ms), "total": stats(retrieve_ms)})
    return rows


def print_e2e(rows: Sequence[dict[str, Any]]) -> None:
    print(f"\nend-to-end TTFT (one request at a time, {rows[0]['questions']} questions, greedy, streamed)")
    print(f"{'path':<42} {'TTFT p50':>9} {'TTFT p95':>9} {'total p50':>10}")
    for r in rows:
        print(f"{r['path']:<42} {r['ttft']['p50_ms']:>9.0f} {r['ttft']['p95_ms']:>9.0f} {r['total']['p50_ms']:>10.0f}")
    base = {r["path"]: r["ttft"]["p50_ms"] for r in rows}
    bare, grounded, rag = (base["chat: question only"], base["chat: grounded prompt"],
                           base["rag: retrieve + rerank + chat"])
    print(f"RAG TTFT p50 / grounded-prompt TTFT p50 = {rag / grounded:.2f}x (retrieval and hops: "
          f"{rag - grounded:+.0f} ms); grounded / bare question = {grounded / bare:.2f}x (reading the sources)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts, comma-separated, grown in order")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--topics", type=int, default=200, help="embedding clusters (centroids)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per UNWIND write transaction")
    parser.add_argument("--settle-timeout", type=float, default=600.0,
                        help="seconds to wait for the vector index's background graph build after each growth")
    parser.add_argument("--heap", default=None, help="ArcadeDB JVM heap, e.g. 4g (default: the server's own)")
    parser.add_argument("--text-from", default=DEFAULT_TEXT if Path(DEFAULT_TEXT).is_dir() else None,
                        help="a BEIR folder: chunk texts are windows of its documents and its queries are timed too, "
                             "with passages cut from the chunks (default: ../shared/data/scifact-dev when present; "
                             "'' for made-up words only)")
    parser.add_argument("--max-df", default=str(keywords.MAX_DF),
                        help="keyword terms' document-frequency cut(s) for the real-length queries, e.g. 1,0.1,0.05 "
                             "(the first is the main row; keywords.MAX_DF)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--rag-url", default=None,
                        help="a running RAG service (e.g. http://127.0.0.1:3001): adds the end-to-end TTFT section")
    parser.add_argument("--chat-url", default="http://127.0.0.1:3000", help="the chat server the RAG service uses")
    parser.add_argument("--e2e-questions", type=int, default=20, help="eval-set questions for the TTFT section")
    args = parser.parse_args(argv)
    if args.heap:
        os.environ["LLMSHIP_GRAPH_HEAP"] = args.heap  # read by the server process llmship.knowledge.graphstore.server starts
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    started = time.perf_counter()
    texts, claims = text_windows(args.text_from, seed=args.seed) if args.text_from else ([], [])
    corpus = SyntheticCorpus(seed=args.seed, topics=args.topics, texts=texts)
    queries = corpus.queries(args.queries)
    print(f"{len(queries)} queries, sizes {', '.join(f'{s:,}' for s in sizes)}, {corpus.topics} topics, "
          f"{len(corpus.vocab)}-word vocabulary, {os.cpu_count()} CPUs, "
          f"graph heap {os.environ.get('LLMSHIP_GRAPH_HEAP') or default_heap() + ' (server default)'}")
    results: dict[str, Any] = {
        "settings": vars(args) | {"sizes": sizes, "cpus": os.cpu_count(), "platform": platform.platform()}}
    if sizes:
        results["retrieval"] = retrieval_latency(sizes, queries, corpus=corpus, top_k=args.top_k,
                                                 warmup=args.warmup, concurrency=args.concurrency,
                                                 batch_size=args.batch_size, settle_timeout_s=args.settle_timeout,
                                                 claims=claims, max_dfs=[float(x) for x in args.max_df.split(",")])
        print_retrieval(results["retrieval"])
    if args.rag_url:
        from llmship.rag.eval_set import load_questions

        questions = [q.question for q in load_questions()][:args.e2e_questions]
        results["e2e"] = e2e_ttft(args.rag_url, args.chat_url, questions)
        print_e2e(results["e2e"])
    else:
        print("\n(end-to-end TTFT: pass --rag-url http://127.0.0.1:3001 with the services running)")
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"results: {args.json}")


if __name__ == "__main__":
    main()
