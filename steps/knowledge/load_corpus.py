"""load_corpus: read the document folder and chunk it by the embedder's tokens."""

from typing import Annotated

from zenml import step

from llmship.knowledge.ingest.embedding_refresh import ChunkingConfig, Corpus, CorpusConfig, EmbedConfig, load_embedder
from llmship.knowledge.ingest.embedding_refresh import load_corpus as load


@step
def load_corpus(corpus: CorpusConfig, chunking: ChunkingConfig, embed: EmbedConfig) -> Annotated[Corpus, "corpus"]:
    return load(corpus, chunking, load_embedder(embed))
