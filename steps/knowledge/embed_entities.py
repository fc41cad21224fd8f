"""embed_entities: GCN-autoencoder graph embeddings on CO_OCCURS, written to Entity.graph_embedding."""

from typing import Annotated

from zenml import step

from llmship.knowledge.kg.graph_embeddings import EmbeddingReport, GcnConfig
from llmship.knowledge.kg.update import KgReport
from llmship.knowledge.kg.update import embed_entities as embed
from steps.knowledge._graph import connect


@step
def embed_entities(kg_report: KgReport, gcn: GcnConfig) -> Annotated[EmbeddingReport, "graph_embedding_report"]:
    with connect() as graph:
        report = embed(graph, gcn)
    auc = f"{report.auc:.3f}" if report.auc is not None else "n/a"
    print(f"result: graph embeddings {'unchanged' if report.skipped else f'for {report.written} entities'}, "
          f"held-out link AUC {auc}")
    return report
