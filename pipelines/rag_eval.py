"""rag_eval: one step, ``evaluate_rag`` — recall@k and MRR per retrieval mode over the graph, and (when the RAG
service answers at ``config.rag_url``) the answer citation rate; every run logged to MLflow (experiment
``rag-eval``).

Run: ``zenml pipeline run pipelines.rag_eval.rag_eval -c configs/rag_eval.yaml`` (``make eval-rag``) after
embedding_refresh and kg_update; ``llmship eval rag`` is the same without ZenML.
"""

from zenml import pipeline

from llmship.rag.evaluate import RagEvalConfig
from steps.knowledge.evaluate_rag import evaluate_rag


@pipeline(enable_cache=False)
def rag_eval(config: RagEvalConfig = RagEvalConfig()) -> None:
    evaluate_rag(config=config)
