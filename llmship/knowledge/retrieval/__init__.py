"""Retrieval: the Retriever (dense, keyword, hybrid, graph), score fusion, keyword term selection, rerankers."""
