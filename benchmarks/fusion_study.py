"""Fusion candidates for hybrid retrieval, measured on a BEIR folder (issue 15: "fusion that earns its name").

Loads the BEIR folder into a throwaway embedded ArcadeDB with the code ``llmship eval retrieval`` uses, asks the
graph's own dense (vector index) and keyword (full-text, ``keywords.select_terms``) searches once per query for
``--pool`` chunks each, then scores fusion functions over those same two lists offline, so every candidate
sees identical inputs (Bruch et al., 2023, "An Analysis of Fusion Functions for Hybrid Retrieval"):

- ``rrf``: Σ 1 / (60 + rank) (the old default);
- ``minmax α``: α·dense + (1-α)·keyword, each list's scores min-max scaled to [0, 1], a missing score = 0;
- ``zscore α``: the same with each list's scores standardised (mean 0, sd 1), a missing score = the list's min;
- ``... doc``: the same after folding each list to documents (a document's score = its best chunk's), the
  fused document ranking then expanded back to its chunks.

Chunk rankings are folded to documents in first-appearance order, as ``llmship eval retrieval`` scores them.
The keyword lists come from the retriever's in-memory BM25 index (``memory``, the default) or the graph's full-text
index (``graph``, what answers until that index is built); ``--keyword graph,memory`` compares the two.

``--feedback`` adds pseudo-relevance feedback, the fused (zscore 0.5) top ``m`` chunks taken as relevant: Rocchio on
the dense side (query vector + β · the mean of their vectors, searched again in the vector index) and RM3 on the
keyword side (the query's stems, weight λ, plus the ``t`` stems of highest tf·idf in them, weight 1-λ, scored by the
in-memory BM25 index), each fused again with the other side's first list.

    python benchmarks/fusion_study.py --beir ../shared/data/scifact-dev [--pool 40] [--keyword memory] [--cache PATH]
        [--feedback]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.knowledge_bench import embedded_graph
from llmship.knowledge.cache import EmbeddingCache
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.retrieval import fusion, keywords
from llmship.knowledge.retrieval.retriever import Retriever, doc_of_chunk
from llmship.rag.beir import load_beir
from llmship.rag.retrieval_eval import doc_ranking, load_collection, score_run


def _convex(norm: str, alpha: float, by_doc: bool, dense: list, keyword: list) -> list[str]:
    """The retriever's own fusion functions on this query's two lists (document level: ``fusion.by_document``)."""
    components = {"dense": dict(dense), "keyword": dict(keyword)}
    weights = {"dense": alpha, "keyword": 1 - alpha}
    if by_doc:
        return _order(fusion.by_document(components, weights, doc_of_chunk, norm))
    return _order(fusion.convex(components, weights, norm))


def candidates(alphas: list[float]) -> dict:
    out = {"dense": lambda d, k: [c for c, _ in d], "keyword": lambda d, k: [c for c, _ in k],
           "rrf": lambda d, k: _order(fusion.rrf({"d": [c for c, _ in d], "k": [c for c, _ in k]}))}
    for norm in fusion.NORMS:
        for a in alphas:
            out[f"{norm} {a:.1f}"] = partial(_convex, norm, a, False)
            out[f"{norm} {a:.1f} doc"] = partial(_convex, norm, a, True)
    return out


def _order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda cid: (-scores[cid], cid))


def _feedback_rows(dataset, retriever: Retriever, graph, lists: dict, pool: int) -> list[tuple[str, dict]]:
    """Rocchio (dense) and RM3 (keyword) pseudo-relevance feedback from the fused top chunks (module docstring)."""
    from collections import Counter

    index = retriever.keyword_index.get(wait=True)
    fused = {qid: _convex("zscore", 0.5, False, d, k) for qid, (d, k) in lists.items()}

    def scored(run: dict[str, list[str]]) -> dict:
        return score_run(dataset.qrels, {q: doc_ranking([dataset.corpus_id(c.split("#", 1)[0]) for c in order])
                                         for q, order in run.items()})

    rows = []
    vectors = {r["id"]: np.asarray(r["embedding"], dtype=np.float32)
               for r in graph.chunks(sorted({c for order in fused.values() for c in order[:5]}))}
    for m, beta in ((1, 0.5), (1, 1.0), (2, 0.5), (3, 0.5), (5, 0.5)):
        dense2, hybrid2 = {}, {}
        for qid, text in dataset.queries.items():
            q = retriever.embed_query(text)
            top = np.mean([vectors[c] / np.linalg.norm(vectors[c]) for c in fused[qid][:m]], axis=0)
            hits = graph.vector_search(q / np.linalg.norm(q) + beta * top, pool)
            dense2[qid] = [c for c, _ in hits]
            hybrid2[qid] = _convex("zscore", 0.5, False, hits, lists[qid][1])
        rows += [(f"rocchio m={m} β={beta}: dense", scored(dense2)), (f"rocchio m={m} β={beta}: hybrid", scored(hybrid2))]
    texts = {r["id"]: r["text"] for r in graph.chunks(sorted({c for o in fused.values() for c in o[:10]}), False)}
    for m, t, lam in ((3, 10, 0.7), (3, 20, 0.7), (5, 10, 0.5), (10, 20, 0.7)):
        keyword2, hybrid2 = {}, {}
        for qid, text in dataset.queries.items():
            expansion: Counter[str] = Counter()
            for cid in fused[qid][:m]:
                tf = Counter(keywords.analyse(texts[cid]))
                for stem, f in tf.items():
                    expansion[stem] += f / max(1, sum(tf.values())) * index.stem_stats.idf(stem)
            best = dict(expansion.most_common(t))
            terms = index.terms(text)
            weights = {s: lam / len(terms) for s in terms}
            for stem, w in best.items():
                weights[stem] = weights.get(stem, 0.0) + (1 - lam) * w / sum(best.values())
            total = sum(w * index._bm25.get_scores([s]) for s, w in weights.items())
            top = np.argsort(-total, kind="stable")[:pool]
            hits = [(index.ids[i], float(total[i])) for i in top if total[i] > 0]
            keyword2[qid] = [c for c, _ in hits]
            hybrid2[qid] = _convex("zscore", 0.5, False, lists[qid][0], hits)
        rows += [(f"rm3 m={m} t={t} λ={lam}: keyword", scored(keyword2)),
                 (f"rm3 m={m} t={t} λ={lam}: hybrid", scored(hybrid2))]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--pool", type=int, default=40, help="chunks asked of each search per query")
    parser.add_argument("--alphas", default="0.3,0.4,0.5,0.6,0.7", help="dense weights tried")
    parser.add_argument("--cache", default="/tmp/llmship-fusion-study-embeddings.sqlite")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedding")
    parser.add_argument("--keyword", default="memory",
                        help="keyword lists from: memory (the in-memory BM25 index) or graph (the full-text index); "
                             "several: compared, the first fills the main table")
    parser.add_argument("--max-df", default=str(keywords.MAX_DF),
                        help="keyword side: drop terms in more than this share of chunks; several: compared")
    parser.add_argument("--feedback", action="store_true", help="also score pseudo-relevance feedback candidates")
    args = parser.parse_args()

    dataset = load_beir(args.beir, args.split)
    embedder = Embedder.load(threads=args.threads)
    with embedded_graph() as graph, EmbeddingCache(Path(args.cache)) as cache:
        started = time.perf_counter()
        corpus = load_collection(dataset, graph, embedder, cache)
        print(f"{dataset.name}: {len(dataset.documents)} documents, {corpus.chunk_count} chunks, "
              f"{len(dataset.queries)} queries, loaded in {time.perf_counter() - started:.0f}s, pool {args.pool}")
        retriever = Retriever(graph, embedder, reranker=None)
        retriever.keyword_index.get(wait=True)
        dense_lists = {qid: retriever._dense(text, args.pool) for qid, text in dataset.queries.items()}
        search = {"memory": retriever._keyword,
                  "graph": lambda text, n: graph.keyword_search(" ".join(retriever.keyword_terms(text)), n)}
        sources = args.keyword.split(",")
        max_dfs = [float(x) for x in args.max_df.split(",")]
        runs = {}
        for source in sources:
            for max_df in max_dfs:
                keywords.MAX_DF = max_df
                started = time.perf_counter()
                runs[source, max_df] = {qid: (dense_lists[qid], search[source](text, args.pool))
                                        for qid, text in dataset.queries.items()}
                ms = (time.perf_counter() - started) * 1000 / len(dataset.queries)
                terms = np.mean([len(retriever.keyword_terms(t)) for t in dataset.queries.values()])
                print(f"keyword from {source}, max_df {max_df}: {terms:.1f} terms per query on average, "
                      f"{ms:.2f} ms per keyword search")
        lists = runs[sources[0], max(max_dfs)]
        cosines = {}  # qid -> chunk id -> cos(query, chunk), for the embedding re-score
        for qid, text in dataset.queries.items():
            q = retriever.embed_query(text)
            ids = sorted({c for c, _ in lists[qid][0]} | {c for c, _ in lists[qid][1]})
            rows = graph.chunks(ids, ids)
            cosines[qid] = {r["id"]: float(np.dot(r["embedding"], q) / (np.linalg.norm(r["embedding"])
                                                                        * np.linalg.norm(q))) for r in rows}
        feedback = _feedback_rows(dataset, retriever, graph, lists, args.pool) if args.feedback else []
    alphas = [float(a) for a in args.alphas.split(",")]
    rows = []
    for name, fuse in candidates(alphas).items():
        for rescored in (False, True):
            if rescored and not (name in ("rrf", "dense", "keyword") or name.startswith("zscore 0.5")):
                continue
            run = {}
            for qid, (dense, keyword) in lists.items():
                order = fuse(dense, keyword)
                if rescored:  # rerank.EmbeddingRescore: RRF of the fused order and the cosine order
                    cos = cosines[qid]
                    by_cos = {c: r for r, c in enumerate(sorted(order, key=lambda c: -cos.get(c, -1)), 1)}
                    prior = {c: 1 / (60 + r) + 1 / (60 + by_cos[c]) for r, c in enumerate(order, 1)}
                    order = sorted(order, key=lambda c: -prior[c])
                run[qid] = doc_ranking([dataset.corpus_id(cid.split("#", 1)[0]) for cid in order])
            rows.append((name + (" + re-score" if rescored else ""), score_run(dataset.qrels, run)))
    rows += feedback
    width = max(len(n) for n, _ in rows)
    print(f"{'fusion':<{width}}  nDCG@10  R@10   MRR@10")
    by = defaultdict(float)
    for name, m in rows:
        by[name] = m["ndcg@10"]
        print(f"{name:<{width}}  {m['ndcg@10']:.3f}    {m['recall@10']:.3f}  {m['mrr@10']:.3f}")
    if len(runs) > 1:
        print("keyword source and terms' document-frequency cut (keywords.MAX_DF): nDCG@10 keyword alone / zscore 0.5")
        for (source, max_df), per_query in runs.items():
            scored = {}
            for label, fuse in (("keyword", lambda d, k: [c for c, _ in k]),
                                ("zscore", partial(_convex, "zscore", 0.5, False))):
                run = {qid: doc_ranking([dataset.corpus_id(c.split("#", 1)[0]) for c in fuse(d, k)])
                       for qid, (d, k) in per_query.items()}
                scored[label] = score_run(dataset.qrels, run)["ndcg@10"]
            print(f"  {source}, max_df {max_df}: {scored['keyword']:.3f} / {scored['zscore']:.3f}")
    best_single = max(by["dense"], by["keyword"])
    best = max(by, key=by.get)
    print(f"best: {best} {by[best]:.3f} ({by[best] - best_single:+.3f} over the best single mode)")


if __name__ == "__main__":
    main()
