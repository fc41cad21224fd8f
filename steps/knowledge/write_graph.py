"""write_graph: apply the plan to the graph (documents' hashes last, so a killed run is redone, not half-kept)."""

from typing import Annotated

from zenml import step

from llmship.knowledge.ingest.embedding_refresh import Corpus, EmbedConfig, RefreshReport, apply_plan, open_cache
from llmship.knowledge.ingest.refresh import RefreshPlan
from steps.knowledge._graph import connect


@step
def write_graph(corpus: Corpus, refresh_plan: RefreshPlan, embed_stats: dict, embed: EmbedConfig) -> Annotated[
        RefreshReport, "refresh_report"]:
    with connect() as graph, open_cache(embed) as cache:
        report = apply_plan(corpus, refresh_plan, graph, cache, embed_stats["model_id"])
    report = report.model_copy(update={"embedded": embed_stats.get("embedded", 0),
                                       "cache_hits": embed_stats.get("hits", 0)})
    print(f"result: {report.summary()}")
    return report
