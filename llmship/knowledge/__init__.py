"""Knowledge: what the RAG service answers from, kept fresh by the embedding_refresh and kg_update pipelines.

Its parts depend one way (``tests/unit/test_import_graph.py`` checks it):

- ``graphstore/``: the Bolt client every other part writes and reads through (``GraphStore``, its settings and
  Cypher statements), the Neo4j / ArcadeDB dialect differences, the embedded ArcadeDB launcher;
- ``ingest/``: documents, chunking, the refresh plan and ``embedding_refresh`` (documents → chunks → embeddings
  → graph);
- ``kg/``: entity extraction and linking, ``kg_update``, the GCN's entity embeddings;
- ``retrieval/``: the ``Retriever`` (dense, keyword, hybrid, graph), score fusion, keyword term selection,
  rerankers;
- ``embedder.py`` and ``cache.py``: the MiniLM embedder and its embedding cache, shared by ingest, retrieval and
  the chat service's ``/v1/embeddings``.

Evaluation (the demo-corpus recall eval, BEIR loading and scoring) lives in ``llmship.rag``.
Importing this package is cheap: torch and transformers load only when an ``Embedder`` is loaded.
"""

from llmship.knowledge.embedder import DEFAULT_MODEL_ID, Embedder, EmbedderSettings, EmbeddingBatch

__all__ = ["DEFAULT_MODEL_ID", "Embedder", "EmbedderSettings", "EmbeddingBatch"]
