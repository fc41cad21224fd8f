"""link_entities: NER over chunks changed since the last run, entity linking, MENTIONS and CO_OCCURS."""

from typing import Annotated

from zenml import step

from llmship.knowledge.kg.entities import EntityConfig, EntityExtractor
from llmship.knowledge.kg.update import KgReport, run_kg_update
from steps.knowledge._graph import connect


@step
def link_entities(entities: EntityConfig, batch_size: int) -> Annotated[KgReport, "kg_report"]:
    with connect() as graph:
        report = run_kg_update(graph, EntityExtractor(entities), batch_size=batch_size, embed=False)
    print(f"result: {report.chunks_processed} chunks processed; {report.entities} entities, "
          f"{report.co_occurs} co-occurrences ({report.entities_removed} entities removed)")
    return report
