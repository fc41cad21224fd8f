"""``llmship eval rag``'s core: retrieval per mode, the citation rate through a real (in-process) RAG app, and
the MLflow run it logs."""

from __future__ import annotations

import mlflow

from llmship.knowledge.retrieval.retriever import Retriever
from llmship.rag.app import create_rag_app
from llmship.rag.evaluate import EXPERIMENT, aevaluate_rag, log_to_mlflow
from tests.unit.rag.test_rag_service import _rag, _sdk, chat_app, corpus  # noqa: F401 - fixtures
from tests.unit.rag.test_rag_service import run as on_engine_loop

QUESTIONS = [
    {"id": "a", "question": "How far can the Brackenholm Light be seen?", "gold": "nineteen miles",
     "doc_id": "harbour/lighthouse.md"},
    {"id": "b", "question": "Where does Quillbury blue ripen?", "gold": "limestone caves near Dunmarrow",
     "doc_id": "kitchen/cheese.md"},
    {"id": "c", "question": "How often does the Ashkirk ferry cross the sound?", "gold": "twice a day",
     "doc_id": "harbour/ferry.md"},
]


def test_eval_reports_every_mode_and_the_citation_rate(corpus, embedder, chat_app, tmp_path):  # noqa: F811
    app = create_rag_app(_rag(corpus, embedder, chat_app))
    retriever = Retriever(corpus, embedder)
    report = on_engine_loop(aevaluate_rag(retriever, QUESTIONS, k=2, modes=("dense", "keyword", "hybrid"),
                                       client=_sdk(app), max_tokens=6))
    assert set(report.retrieval.modes) == {"dense", "keyword", "hybrid"}
    assert report.retrieval.modes["hybrid"].recall == 1.0  # three easy questions, each in its own document
    c = report.citation
    assert c.questions == 3 and c.failures == 0
    assert c.sources_hold_gold == 1.0  # the one source each answer got holds the gold passage
    assert 0.0 <= c.cited_correctly <= c.cited_any <= 1.0  # the tiny model's answers rarely copy or cite
    assert report.hybrid_gain_points == 0.0
    assert report.targets == {"hybrid_recall_at_least_0.8": True, "hybrid_beats_dense_by_5_points": False}

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_to_mlflow(report, params={"modes": "dense,keyword,hybrid"}, tracking_uri=uri)
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.metrics["recall_at_2.hybrid"] == 1.0
    assert run.data.metrics["citation_rate"] == c.cited_correctly
    assert run.data.tags["target.hybrid_recall_at_least_0.8"] == "met"
    assert mlflow.MlflowClient(tracking_uri=uri).get_experiment(run.info.experiment_id).name == EXPERIMENT
