"""embed_chunks: embed the planned chunks the persistent cache lacks (an unchanged corpus embeds nothing)."""

from typing import Annotated

from zenml import step

from llmship.knowledge.ingest.embedding_refresh import Corpus, EmbedConfig, embed_planned, load_embedder, open_cache
from llmship.knowledge.ingest.refresh import RefreshPlan


@step
def embed_chunks(corpus: Corpus, refresh_plan: RefreshPlan, embed: EmbedConfig) -> Annotated[dict, "embed_stats"]:
    embedder = load_embedder(embed)
    with open_cache(embed) as cache:
        stats = embed_planned(corpus, refresh_plan, embedder, cache, embed.batch_size)
    return {**stats, "model_id": embedder.model_id}  # the cache key the write step reads vectors by
