"""rag_eval: ``evaluate_rag`` — recall@k and MRR per retrieval mode over the graph, and (when the RAG service
answers at ``config.rag_url``) the answer citation rate — and, when ``retrieval`` names a BEIR folder,
``evaluate_retrieval`` on it (nDCG@10 and the rest beside BM25 and exact dense peers); every run logged to MLflow
(experiments ``rag-eval`` and ``retrieval-eval``).

Run: ``zenml pipeline run pipelines.rag_eval.rag_eval -c configs/rag_eval.yaml`` (``make eval-rag``) after
embedding_refresh and kg_update; ``llmship eval rag`` and ``llmship eval retrieval --beir DIR`` are the same
without ZenML.
"""

from zenml import pipeline

from llmship.rag.evaluate import RagEvalConfig
from llmship.rag.retrieval_eval import RetrievalEvalConfig
from steps.knowledge.evaluate_rag import evaluate_rag
from steps.knowledge.evaluate_retrieval import evaluate_retrieval


@pipeline(enable_cache=False)
def rag_eval(config: RagEvalConfig = RagEvalConfig(), retrieval: RetrievalEvalConfig | None = None) -> None:
    report = evaluate_rag(config=config)
    if retrieval is not None:  # after the demo-corpus eval: its collection is loaded and removed again
        evaluate_retrieval(config=retrieval, after=report)
