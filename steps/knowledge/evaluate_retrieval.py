"""evaluate_retrieval: nDCG@10, recall@10/@100, MRR@10 and latency per mode on a BEIR folder, beside BM25 and
exact dense peers, logged to MLflow (retrieval-eval)."""

from typing import Annotated

from zenml import step

from llmship.rag.retrieval_eval import RetrievalEvalConfig, RetrievalEvalReport, run_retrieval_eval
from steps.knowledge._graph import connect


@step
def evaluate_retrieval(config: RetrievalEvalConfig) -> Annotated[RetrievalEvalReport, "retrieval_eval_report"]:
    with connect() as graph:
        report, run_id = run_retrieval_eval(config, graph=graph)
    print(report.table())
    if run_id:
        print(f"retrieval_eval: logged to MLflow experiment retrieval-eval, run {run_id}")
    return report
