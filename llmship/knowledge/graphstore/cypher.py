"""Every Cypher statement llmship runs, in one place: parameters only, never formatted (``$rows``, ``$ids``, ...).

Writes are named in ``QUERIES`` (what ``GraphStore.write`` and ``write_together`` take); reads are constants the
store's readers and the pipelines pass to ``GraphStore.read``. What differs between Neo4j 5 and ArcadeDB (index
DDL, vector and full-text search) is not here but in ``dialects.py``.
"""

from __future__ import annotations

# ---- the statements (parameters only) -------------------------------------------------------------------------

UPSERT_DOCUMENTS = """
UNWIND $rows AS r
MERGE (d:Document {id: r.id})
SET d.hash = r.hash, d.title = r.title, d.source = r.source
"""

# A chunk that moved to another document loses its old FROM_DOCUMENT link; an upsert without an embedding
# keeps the stored one (text first, embeddings later is a normal pipeline order).
UPSERT_CHUNKS = """
UNWIND $rows AS r
MERGE (c:Chunk {id: r.id})
SET c.doc_id = r.doc_id, c.seq = r.seq, c.text = r.text, c.hash = r.hash,
    c.start_char = r.start_char, c.end_char = r.end_char,
    c.embedding = coalesce(r.embedding, c.embedding)
MERGE (d:Document {id: r.doc_id})
MERGE (c)-[:FROM_DOCUMENT]->(d)
WITH c, r
OPTIONAL MATCH (c)-[old:FROM_DOCUMENT]->(other:Document)
WHERE other.id <> r.doc_id
DELETE old
"""

CHUNKS = """
UNWIND $ids AS id MATCH (c:Chunk {id: id})
RETURN c.id AS id, c.doc_id AS doc_id, c.seq AS seq, c.text AS text, c.hash AS hash,
       c.start_char AS start_char, c.end_char AS end_char
"""
CHUNKS_WITH_EMBEDDINGS = CHUNKS.rstrip() + ", c.embedding AS embedding\n"
CHUNK_EMBEDDINGS = "UNWIND $ids AS id MATCH (c:Chunk {id: id}) RETURN c.id AS id, c.embedding AS embedding"

SET_EMBEDDINGS = """
UNWIND $rows AS r
MATCH (c:Chunk {id: r.id})
SET c.embedding = r.embedding
"""

# NEXT_CHUNK is rebuilt for every document a batch touched: drop the document's links, then chain its chunks by
# (seq, id). Rebuilding (rather than linking only the new rows) keeps the chain right when a re-chunked document
# gets new ids or stale chunks are deleted.
UNLINK_NEXT = """
UNWIND $doc_ids AS did
MATCH (a:Chunk {doc_id: did})-[n:NEXT_CHUNK]->()
DELETE n
"""
LINK_NEXT = """
UNWIND $doc_ids AS did
MATCH (c:Chunk {doc_id: did})
WITH did, c ORDER BY c.seq, c.id
WITH did, collect(c) AS cs
UNWIND range(0, size(cs) - 2) AS i
WITH cs[i] AS a, cs[i + 1] AS b
MERGE (a)-[:NEXT_CHUNK]->(b)
"""

MOVED_FROM = """
UNWIND $rows AS r
MATCH (c:Chunk {id: r.id})
WHERE c.doc_id <> r.doc_id
RETURN DISTINCT c.doc_id AS did
"""
DOC_IDS_OF_CHUNKS = """
UNWIND $ids AS id
MATCH (c:Chunk {id: id})
RETURN DISTINCT c.doc_id AS did
"""
DELETE_CHUNKS = """
UNWIND $ids AS id
MATCH (c:Chunk {id: id})
DETACH DELETE c
"""
DELETE_DOCUMENT_CHUNKS = """
UNWIND $ids AS id
MATCH (c:Chunk {doc_id: id})
DETACH DELETE c
"""
DELETE_DOCUMENTS = """
UNWIND $ids AS id
MATCH (d:Document {id: id})
DETACH DELETE d
"""

UPSERT_ENTITIES = """
UNWIND $rows AS r
MERGE (e:Entity {key: r.key})
SET e.name = r.name, e.label = r.label
"""
LINK_MENTIONS = """
UNWIND $rows AS r
MATCH (c:Chunk {id: r.chunk_id})
MATCH (e:Entity {key: r.entity_key})
MERGE (c)-[:MENTIONS]->(e)
"""

# kg_update (llmship.knowledge.kg.update): one chunk batch = these four in one transaction, the kg_hash mark last.
KG_UNLINK_MENTIONS = """
UNWIND $rows AS r
MATCH (c:Chunk {id: r.id})-[m:MENTIONS]->(:Entity)
DELETE m
"""
KG_MERGE_ENTITIES = """
UNWIND $rows AS r
MERGE (e:Entity {key: r.key})
ON CREATE SET e.name = r.name, e.aliases = r.aliases, e.mention_count = 0, e.chunk_count = 0
SET e.label = r.label
"""
KG_LINK_MENTIONS = """
UNWIND $rows AS r
MATCH (c:Chunk {id: r.chunk_id})
MATCH (e:Entity {key: r.key})
MERGE (c)-[m:MENTIONS]->(e)
SET m.count = r.count, m.surfaces = r.surfaces
"""
KG_MARK_CHUNKS = """
UNWIND $rows AS r
MATCH (c:Chunk {id: r.id})
SET c.kg_hash = r.hash
"""
# kg_update's derived data (recomputed from MENTIONS, written as a diff).
KG_SET_ENTITY_STATS = """
UNWIND $rows AS r
MATCH (e:Entity {key: r.key})
SET e.name = r.name, e.aliases = r.aliases, e.mention_count = r.mention_count, e.chunk_count = r.chunk_count
"""
KG_DELETE_ENTITIES = """
UNWIND $rows AS r
MATCH (e:Entity {key: r.key})
DETACH DELETE e
"""
KG_DELETE_CO_OCCURS = """
UNWIND $rows AS r
MATCH (a:Entity {key: r.a})-[x:CO_OCCURS]->(b:Entity {key: r.b})
DELETE x
"""
KG_MERGE_CO_OCCURS = """
UNWIND $rows AS r
MATCH (a:Entity {key: r.a})
MATCH (b:Entity {key: r.b})
MERGE (a)-[x:CO_OCCURS]->(b)
SET x.weight = r.weight
"""
KG_SET_GRAPH_EMBEDDINGS = """
UNWIND $rows AS r
MATCH (e:Entity {key: r.key})
SET e.graph_embedding = r.embedding
"""

#: Named batch writes for ``GraphStore.write`` (pipelines add theirs here, parameterised, never formatted).
QUERIES: dict[str, str] = {
    "upsert_documents": UPSERT_DOCUMENTS,
    "upsert_chunks": UPSERT_CHUNKS,
    "set_embeddings": SET_EMBEDDINGS,
    "upsert_entities": UPSERT_ENTITIES,
    "link_mentions": LINK_MENTIONS,
    "kg_unlink_mentions": KG_UNLINK_MENTIONS,
    "kg_merge_entities": KG_MERGE_ENTITIES,
    "kg_link_mentions": KG_LINK_MENTIONS,
    "kg_mark_chunks": KG_MARK_CHUNKS,
    "kg_set_entity_stats": KG_SET_ENTITY_STATS,
    "kg_delete_entities": KG_DELETE_ENTITIES,
    "kg_delete_co_occurs": KG_DELETE_CO_OCCURS,
    "kg_merge_co_occurs": KG_MERGE_CO_OCCURS,
    "kg_set_graph_embeddings": KG_SET_GRAPH_EMBEDDINGS,
}

# ---- reads (the pipelines and the retriever) ---------------------------------------------------------------

# kg/update.py
PENDING_CHUNKS = """
MATCH (c:Chunk)
WHERE c.kg_hash IS NULL OR c.kg_hash <> c.hash
RETURN c.id AS id, c.text AS text, c.hash AS hash
ORDER BY c.id
"""
EXISTING_ENTITIES = """
MATCH (e:Entity)
RETURN e.key AS key, e.name AS name, e.label AS label, e.aliases AS aliases,
       e.mention_count AS mention_count, e.chunk_count AS chunk_count
"""
ALL_MENTIONS = """
MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity)
RETURN c.id AS chunk, e.key AS key, m.surfaces AS surfaces
"""
ALL_CO_OCCURS = """
MATCH (a:Entity)-[x:CO_OCCURS]->(b:Entity)
RETURN a.key AS a, b.key AS b, x.weight AS weight
"""
EMBEDDING_INPUTS = "MATCH (e:Entity) RETURN e.key AS key, e.label AS label, e.name AS name"
MISSING_EMBEDDINGS = """
MATCH (e:Entity)
WHERE e.graph_embedding IS NULL OR size(e.graph_embedding) <> $dim
RETURN count(e) AS n
"""

# retrieval/retriever.py
ENTITY_LEXICON = "MATCH (e:Entity) RETURN e.key AS key, e.name AS name, e.aliases AS aliases, " \
                 "e.chunk_count AS chunk_count, e.graph_embedding AS graph_embedding"
DIRECT_MENTIONS = """
UNWIND $keys AS k
MATCH (e:Entity {key: k})<-[:MENTIONS]-(c:Chunk)
RETURN c.id AS id, collect(e.key) AS keys
"""
NEIGHBOURS = """
UNWIND $keys AS k
MATCH (e:Entity {key: k})-[x:CO_OCCURS]-(n:Entity)
WHERE NOT n.key IN $keys
RETURN n.key AS key, sum(x.weight) AS weight, n.chunk_count AS chunk_count
ORDER BY weight DESC, key
LIMIT $n
"""
TITLES = "UNWIND $ids AS id MATCH (d:Document {id: id}) RETURN d.id AS id, d.title AS title"
CHUNK_MENTIONS = """
UNWIND $ids AS id
MATCH (c:Chunk {id: id})-[:MENTIONS]->(e:Entity)
RETURN c.id AS id, collect(e.key) AS keys
"""
ANY_CHUNK = "MATCH (c:Chunk) RETURN c.id AS id LIMIT 1"
CHUNK_TEXTS = "MATCH (c:Chunk) RETURN c.id AS id, c.text AS text"

# ingest/embedding_refresh.py
SPANLESS_CHUNKS = "MATCH (c:Chunk) WHERE c.start_char IS NULL RETURN c.id AS id"
