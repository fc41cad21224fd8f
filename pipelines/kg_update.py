"""kg_update: link_entities → embed_entities.

Run: ``zenml pipeline run pipelines.kg_update.kg_update -c configs/kg_update.yaml`` after embedding_refresh
(the graph must be up: ``llmship graph start``, or ``NEO4J_URI``). Only chunks changed since the last run are
read; everything derived (mention counts, CO_OCCURS weights, stale entities) is recomputed, so a re-run, or a
run after one killed half-way, converges to the same graph. ``schedule`` as in embedding_refresh.
"""

from zenml import pipeline

from llmship.knowledge.ingest.embedding_refresh import ScheduleConfig
from llmship.knowledge.kg.entities import EntityConfig
from llmship.knowledge.kg.graph_embeddings import GcnConfig
from steps.knowledge.embed_entities import embed_entities
from steps.knowledge.link_entities import link_entities


@pipeline(enable_cache=False)
def kg_update(
    entities: EntityConfig = EntityConfig(),
    batch_size: int = 256,
    gcn: GcnConfig = GcnConfig(),
    schedule: ScheduleConfig | None = None,
) -> None:
    report = link_entities(entities=entities, batch_size=batch_size)
    embed_entities(report, gcn=gcn)
