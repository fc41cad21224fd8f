"""Retrieval quality on the demo corpus: every mode × every reranker candidate, end to end.

Starts a throwaway embedded ArcadeDB, runs ``embedding_refresh`` over ``data/corpus/docs`` (embeddings cached
in ``--cache``, so only the first run embeds, ~25 s) and ``kg_update`` (NER, no graph embeddings), then
evaluates dense / keyword / hybrid / graph retrieval with each reranker on the eval set
(``data/eval/rag_questions.jsonl``) and prints recall@k, doc-recall@k, MRR@k and latency per combination,
with hybrid's gain over dense (the issue's target: ≥ +5 points and ≥ 0.8) and each reranker's against none.

    python benchmarks/retrieval_eval.py [--k 5] [--rerankers none,embedding,entity,mmr,entity+embedding]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.knowledge_bench import embedded_graph
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.ingest.embedding_refresh import (
    ChunkingConfig,
    CorpusConfig,
    EmbedConfig,
    run_embedding_refresh,
)
from llmship.knowledge.kg.entities import EntityExtractor
from llmship.knowledge.kg.update import run_kg_update
from llmship.knowledge.retrieval import rerank
from llmship.knowledge.retrieval.retriever import FUSION_WEIGHTS, MODES, Retriever
from llmship.rag.recall_eval import RetrievalEval, evaluate_retrieval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--cache", default="/tmp/llmship-retrieval-eval-embeddings.sqlite")
    parser.add_argument("--questions", default=None, help="a rag_questions.jsonl (default: the shipped eval set)")
    parser.add_argument("--rerankers", default=",".join(rerank.CANDIDATES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--misses", action="store_true", help="print the questions each mode missed")
    parser.add_argument("--fusion-levels", default="chunk",
                        help="hybrid/graph fusion levels to compare: chunk, document (Retriever.fusion_level)")
    parser.add_argument("--graph-weights", default=None,
                        help="graph mode's weight in the fusion to compare, e.g. 0.25,0.5,1 (default: FUSION_WEIGHTS)")
    parser.add_argument("--graph-neighbours", default="co_occurs",
                        help="graph mode's hop to compare: co_occurs, gcn, both (Retriever.graph_neighbours); "
                             "gcn and both train the GCN in kg_update")
    args = parser.parse_args()

    from llmship.rag.eval_set import load_questions

    questions = load_questions(args.questions)
    modes = tuple(args.modes.split(","))
    names = args.rerankers.split(",")
    print(f"{len(questions)} questions, k={args.k}, modes {', '.join(modes)}, rerankers {', '.join(names)}")
    with embedded_graph() as graph:
        embedder = Embedder.load(threads=1)
        extractor = EntityExtractor()
        started = time.perf_counter()
        refresh = run_embedding_refresh(CorpusConfig(), ChunkingConfig(), EmbedConfig(cache_path=args.cache),
                                        graph=graph, embedder=embedder)
        print(f"embedding_refresh: {refresh.chunks} chunks of {refresh.documents} documents, "
              f"{refresh.embedded} embedded, {refresh.cache_hits} from cache, {time.perf_counter() - started:.1f}s")
        hops = args.graph_neighbours.split(",")
        kg = run_kg_update(graph, extractor, embed=any(h != "co_occurs" for h in hops), progress=False)
        print(f"kg_update: {kg.summary()}")

        results: dict[str, RetrievalEval] = {}
        levels = args.fusion_levels.split(",")
        weights = [None] if not args.graph_weights else [float(w) for w in args.graph_weights.split(",")]
        variants = [(level, hop, w) for level in levels for hop in hops for w in weights]
        for level, hop, w in variants:
            for reranker in names:
                name = reranker + (f" ({level} fusion, {hop}" + (f", graph {w}" if w is not None else "") + ")"
                                   if len(variants) > 1 else "")
                fusion_weights = None if w is None else {**FUSION_WEIGHTS, "graph": w}
                retriever = Retriever(graph, embedder, extractor, reranker=rerank.CANDIDATES[reranker](),
                                      fusion_level=level, graph_neighbours=hop, fusion_weights=fusion_weights)
                retriever.keyword_index.get(wait=True)
                results[name] = evaluate_retrieval(retriever, questions, modes=modes, k=args.k, label=name)
                print()
                print(results[name].table())
                if args.misses:
                    for mode, res in results[name].modes.items():
                        print(f"  {mode} missed: {', '.join(res.misses) or '-'}")

    print(f"\nrecall@{args.k} by hops (1-hop / 2-hop questions):")
    for name, res in results.items():
        print(f"  {name:<18} " + "  ".join(
            f"{mode} {'/'.join(f'{v:.2f}' for v in r.recall_by_hops.values())}" for mode, r in res.modes.items()))

    base = results.get("none") or next(iter(results.values()))
    if {"dense", "hybrid"} <= set(base.modes):
        dense, hybrid = base.modes["dense"], base.modes["hybrid"]
        gain = 100 * (hybrid.recall - dense.recall)
        print(f"\nhybrid vs dense: recall@{args.k} {hybrid.recall:.3f} vs {dense.recall:.3f} ({gain:+.1f} points; "
              f"target ≥ +5 and ≥ 0.8: {'met' if gain >= 5 and hybrid.recall >= 0.8 else 'NOT met'}), "
              f"latency ×{hybrid.mean_ms / dense.mean_ms:.2f}")
    if "none" in results and len(variants) == 1:
        print("rerankers vs none (recall@k / MRR@k change per mode):")
        for name, res in results.items():
            if name != "none":
                print(f"  {name:<18} " + "  ".join(
                    f"{mode} {100 * (r.recall - base.modes[mode].recall):+.1f}/{r.mrr - base.modes[mode].mrr:+.3f}"
                    for mode, r in res.modes.items()))


if __name__ == "__main__":
    main()
