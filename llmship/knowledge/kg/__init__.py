"""The knowledge graph: entity extraction and linking, kg_update, the GCN graph embeddings."""
