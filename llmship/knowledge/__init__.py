"""Knowledge: embeddings now; chunking, the graph store and the retriever to come.

Importing this package is cheap: torch and transformers load only when an
``Embedder`` is loaded.
"""

from llmship.knowledge.embedder import DEFAULT_MODEL_ID, Embedder, EmbedderSettings, EmbeddingBatch

__all__ = ["DEFAULT_MODEL_ID", "Embedder", "EmbedderSettings", "EmbeddingBatch"]
