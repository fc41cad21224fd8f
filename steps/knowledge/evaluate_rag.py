"""evaluate_rag: retrieval recall@k/MRR per mode and the answer citation rate, logged to MLflow (rag-eval)."""

from typing import Annotated

from zenml import step

from llmship.rag.evaluate import RagEvalConfig, RagEvalReport, run_rag_eval
from steps.knowledge._graph import connect


@step
def evaluate_rag(config: RagEvalConfig) -> Annotated[RagEvalReport, "rag_eval_report"]:
    with connect() as graph:
        report, run_id = run_rag_eval(config, graph=graph)
    print(report.table())
    if run_id:
        print(f"rag_eval: logged to MLflow experiment rag-eval, run {run_id}")
    return report
