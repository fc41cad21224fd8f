"""Rows shaped as Neo4j 5's ``SHOW INDEXES YIELD name, type, labelsOrTypes, properties, options, state`` returns them
(Cypher manual, "SHOW INDEXES"), for the dialect's read-back of its search indexes."""

from __future__ import annotations

from llmship.knowledge.graphstore.dialects import Neo4jDialect

VECTOR, KEYWORD = Neo4jDialect.vector_index, Neo4jDialect.keyword_index


def vector(name: str = VECTOR, dims: int = 384, label: str = "Chunk") -> dict:
    return {"name": name, "type": "VECTOR", "labelsOrTypes": [label], "properties": ["embedding"], "state": "ONLINE",
            "options": {"indexProvider": "vector-2.0",
                        "indexConfig": {"vector.dimensions": dims, "vector.similarity_function": "COSINE"}}}


def fulltext(name: str = KEYWORD) -> dict:
    return {"name": name, "type": "FULLTEXT", "labelsOrTypes": ["Chunk"], "properties": ["text"], "state": "ONLINE",
            "options": {"indexProvider": "fulltext-1.0", "indexConfig": {"fulltext.analyzer": "standard-no-stop-words"}}}
