"""embedding_refresh: load_corpus → plan_refresh → embed_chunks → write_graph.

Run: ``zenml pipeline run pipelines.embedding_refresh.embedding_refresh -c configs/embedding_refresh.yaml``
(the graph must be up: ``llmship graph start``, or ``NEO4J_URI`` for Neo4j 5). A re-run over an unchanged
folder embeds and writes nothing. ``schedule`` is applied by ``llmship knowledge schedule embedding_refresh``
where the active orchestrator can schedule; a plain run is a one-off (see README, "Schedules").
"""

from zenml import pipeline

from llmship.knowledge.ingest.embedding_refresh import ChunkingConfig, CorpusConfig, EmbedConfig, ScheduleConfig
from steps.knowledge.embed_chunks import embed_chunks
from steps.knowledge.load_corpus import load_corpus
from steps.knowledge.plan_refresh import plan_refresh
from steps.knowledge.write_graph import write_graph


@pipeline(enable_cache=False)
def embedding_refresh(
    corpus: CorpusConfig = CorpusConfig(),
    chunking: ChunkingConfig = ChunkingConfig(),
    embed: EmbedConfig = EmbedConfig(),
    schedule: ScheduleConfig | None = None,
) -> None:
    loaded = load_corpus(corpus=corpus, chunking=chunking, embed=embed)
    refresh_plan = plan_refresh(loaded)
    stats = embed_chunks(loaded, refresh_plan, embed=embed)
    write_graph(loaded, refresh_plan, stats, embed=embed)
