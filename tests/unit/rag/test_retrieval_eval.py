"""``llmship.rag.retrieval_eval``: BEIR's scores (through pytrec_eval) against hand-computed values."""

from __future__ import annotations

import math

import pytest

from llmship.rag.retrieval_eval import doc_ranking, mrr_at, score_run

QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d5": 2, "d6": 1}, "q3": {"d8": 1}}
RUN = {"q1": ["d2", "d1", "d3", "d4"], "q2": ["d6", "d7"]}  # q3: nothing retrieved


def test_ndcg_recall_and_mrr_match_the_hand_computed_figures():
    # q1: DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3)
    q1 = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    # q2: graded: d6 (grade 1) at rank 1 -> DCG 1; ideal = 2 + 1/log2(3)
    q2 = 1.0 / (2 + 1 / math.log2(3))
    scores = score_run(QRELS, RUN)
    assert scores["ndcg@10"] == pytest.approx((q1 + q2 + 0) / 3, abs=1e-4)
    assert scores["recall@10"] == pytest.approx((1.0 + 0.5 + 0) / 3)
    assert scores["recall@100"] == pytest.approx((1.0 + 0.5 + 0) / 3)
    assert scores["mrr@10"] == pytest.approx((0.5 + 1.0 + 0) / 3)


def test_the_cut_at_ten_counts():
    ranking = [f"x{i}" for i in range(10)] + ["d1"]
    scores = score_run({"q": {"d1": 1}}, {"q": ranking})
    assert scores["ndcg@10"] == 0 and scores["recall@10"] == 0 and scores["mrr@10"] == 0
    assert scores["recall@100"] == 1.0


def test_a_perfect_ranking_scores_one():
    assert score_run({"q": {"a": 2, "b": 1}}, {"q": ["a", "b", "c"]}) == pytest.approx(
        {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0})


def test_chunks_fold_into_documents_by_first_appearance():
    assert doc_ranking(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_grade_zero_is_not_relevant():
    assert mrr_at({"a": 0, "b": 1}, ["a", "b"]) == 0.5


def test_a_beir_folder_is_evaluated_beside_the_corpus_and_removed_again(graph, tmp_path, home):
    """The whole path on a real ArcadeDB: the collection is loaded by embedding_refresh's code next to a corpus
    document, every mode and both peers are scored, the run is logged to MLflow, and afterwards the collection
    is gone while the corpus document is untouched; ``keep`` leaves it, and a re-run plans nothing to write."""
    import json

    import mlflow

    from llmship.knowledge.ingest.embedding_refresh import (
        ChunkingConfig,
        CorpusConfig,
        EmbedConfig,
        run_embedding_refresh,
    )
    from llmship.rag.retrieval_eval import RetrievalEvalConfig, run_retrieval_eval

    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nThe ferry to Ashkirk leaves at nine.\n")
    run_embedding_refresh(CorpusConfig(folder=str(corpus)), ChunkingConfig(), EmbedConfig(), graph=graph)

    beir = tmp_path / "mini"
    (beir / "qrels").mkdir(parents=True)
    docs = {"d1": "Saffron buns are baked at 190 degrees for fourteen minutes.",
            "d2": "The lighthouse lantern can be seen for nineteen miles.",
            "d3": "Quillbury blue cheese ripens in limestone caves for nine weeks.",
            "d4": "The narrow-gauge railway climbs 400 metres with zig-zag reversing stations."}
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v})
                                                 for k, v in docs.items()))
    queries = {"q1": "how long to bake saffron buns", "q2": "where does the blue cheese ripen",
               "q3": "zig-zag reversing stations on the railway"}
    (beir / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items()))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td4\t1\n")

    report, run_id = run_retrieval_eval(RetrievalEvalConfig(beir=str(beir)), graph=graph)
    assert set(report.methods) == {"dense", "keyword", "hybrid", "graph", "bm25s", "exact-dense-docs"}
    assert report.documents == 4 and report.queries == 3
    for method in report.methods.values():
        assert all(0.0 <= v <= 1.0 for v in method.metrics.values()), method
    # four documents, three plain questions: every method puts the right one first
    assert report.methods["keyword"].metrics["mrr@10"] == 1.0
    assert report.methods["bm25s"].metrics["mrr@10"] == 1.0
    assert report.methods["hybrid"].p95_ms is not None and report.methods["hybrid"].p95_ms > 0
    assert "hybrid (default)" in report.table()

    logged = mlflow.get_run(run_id)
    assert logged.data.tags["dataset"] == "mini"
    assert logged.data.metrics["mrr_at_10.keyword"] == 1.0

    assert set(graph.document_hashes()) == {"guide.md"}  # the collection is gone, the corpus is not
    assert all(not cid.startswith("beir-") for cid in graph.chunk_hashes())

    config = RetrievalEvalConfig(beir=str(beir), keep=True, peers=False, modes=["keyword"], log_mlflow=False)
    run_retrieval_eval(config, graph=graph)
    assert {d for d in graph.document_hashes() if d.startswith("beir-mini/")} == {f"beir-mini/{k}" for k in docs}
    from llmship.knowledge.ingest import embedding_refresh as er
    from llmship.rag.beir import load_beir

    ds = load_beir(beir)
    again = er.plan(er.corpus_from_documents(ds.documents, ChunkingConfig(), er.load_embedder(EmbedConfig())),
                    graph, scope="beir-mini/")
    assert again.is_empty
