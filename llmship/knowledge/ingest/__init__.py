"""Ingestion: documents, chunking, the refresh plan, embedding_refresh (documents -> chunks -> embeddings -> graph)."""
