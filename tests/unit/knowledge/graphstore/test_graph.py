"""GraphStore against a real embedded ArcadeDB (Bolt): idempotent batched writes, deletes, rollback, search."""

from __future__ import annotations

import numpy as np
import pytest

from llmship.errors import GraphError
from llmship.knowledge.graphstore import dialects
from llmship.knowledge.graphstore.cypher import UPSERT_DOCUMENTS
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from tests.helpers.neo4j_indexes import fulltext as fulltext_row
from tests.helpers.neo4j_indexes import vector as vector_row

DIM = 384
INJECTIONS = [
    '"}) MATCH (n) DETACH DELETE n //',
    "'}) MATCH (n) DETACH DELETE n //",
    "\\'",
    "\\\\'\\\"",
    "$param",
    "{id: $rows}",
    "`Chunk` ; DROP CONSTRAINT chunk_id_unique",
    "line\nbreak\ttab \u00e9\u4e2d\U0001f600",
]


def _doc_rows(n: int, prefix: str = "d") -> list[dict]:
    return [{"id": f"{prefix}{i}", "hash": f"h{i}", "title": f"title {i}"} for i in range(n)]


def _chunk_rows(doc_id: str, n: int, rng=None, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        row = {"id": f"{doc_id}-c{i}", "doc_id": doc_id, "seq": i, "text": f"chunk {i} of {doc_id}",
               "hash": f"{doc_id}-h{i}"}
        if rng is not None:
            row["embedding"] = rng.standard_normal(DIM).astype(np.float32)
        rows.append(row)
    return rows


def test_upserts_are_idempotent(graph):
    rng = np.random.default_rng(0)
    docs = _doc_rows(3)
    chunks = [row for d in docs for row in _chunk_rows(d["id"], 4, rng)]
    for _ in range(2):
        graph.upsert_documents(docs)
        graph.upsert_chunks(chunks)
        assert graph.counts() == {"Document": 3, "Chunk": 12, "Entity": 0, "Meta": 0,
                                  "FROM_DOCUMENT": 12, "NEXT_CHUNK": 9, "MENTIONS": 0,
                                  "CO_OCCURS": 0}
    assert graph.document_hashes() == {"d0": "h0", "d1": "h1", "d2": "h2"}
    assert graph.chunk_hashes("d1") == {f"d1-c{i}": f"d1-h{i}" for i in range(4)}
    assert len(graph.chunk_hashes()) == 12


def test_ensure_schema_is_idempotent(graph):
    graph.ensure_schema()
    graph.ensure_schema()
    graph.upsert_documents(_doc_rows(1))
    assert graph.counts()["Document"] == 1


def test_batches_of_a_thousand_rows(graph_server):
    settings = GraphSettings.for_server(graph_server, batch_size=1000)
    with GraphStore.connect(settings) as store:
        store.clear()
        assert store.upsert_documents(_doc_rows(2500)) == 2500  # three UNWIND batches, three transactions
        assert store.upsert_chunks(_chunk_rows("d7", 1200)) == 1200  # two batches, one document chain
        counts = store.counts()
        assert counts["Document"] == 2500 and counts["Chunk"] == 1200
        assert counts["FROM_DOCUMENT"] == 1200 and counts["NEXT_CHUNK"] == 1199  # chain spans the batch border
        assert store.delete_documents([f"d{i}" for i in range(2500)]) == 2500
        assert store.counts()["Chunk"] == 0
        store.clear()


def test_embeddings_round_trip(graph):
    rng = np.random.default_rng(1)
    rows = _chunk_rows("doc", 3, rng)
    graph.upsert_chunks(rows)
    back = graph.chunks([r["id"] for r in rows])
    for row, got in zip(rows, back, strict=True):
        assert len(got["embedding"]) == DIM
        # ArcadeDB stores ARRAY_OF_FLOATS (float32); the input is float32, so it comes back exactly
        np.testing.assert_allclose(np.asarray(got["embedding"], dtype=np.float32), row["embedding"], rtol=1e-6)
    # an upsert without an embedding keeps the stored vector
    graph.upsert_chunks([{k: v for k, v in rows[0].items() if k != "embedding"} | {"text": "new text"}])
    again = graph.chunks([rows[0]["id"]])[0]
    assert again["text"] == "new text"
    np.testing.assert_allclose(np.asarray(again["embedding"], dtype=np.float32), rows[0]["embedding"], rtol=1e-6)


def test_delete_stale_chunks_and_their_relationships(graph):
    graph.upsert_documents(_doc_rows(2))
    graph.upsert_chunks(_chunk_rows("d0", 5) + _chunk_rows("d1", 2))
    assert graph.counts()["NEXT_CHUNK"] == 5
    # d0 was re-chunked into 3 chunks: the pipeline deletes the two stale ones
    stale = [cid for cid in graph.chunk_hashes("d0") if cid not in {"d0-c0", "d0-c1", "d0-c2"}]
    assert sorted(stale) == ["d0-c3", "d0-c4"]
    assert graph.delete_chunks(stale) == 2
    counts = graph.counts()
    assert counts["Chunk"] == 5 and counts["FROM_DOCUMENT"] == 5 and counts["NEXT_CHUNK"] == 3
    chain = graph.read("MATCH (a:Chunk {doc_id: $d})-[:NEXT_CHUNK]->(b:Chunk) RETURN a.id AS src, b.id AS dst "
                       "ORDER BY a.seq", d="d0")
    assert [(r["src"], r["dst"]) for r in chain] == [("d0-c0", "d0-c1"), ("d0-c1", "d0-c2")]
    # deleting a document takes its chunks (and all their relationships) with it
    graph.delete_documents(["d0"])
    assert graph.counts() == {"Document": 1, "Chunk": 2, "Entity": 0, "Meta": 0,
                              "FROM_DOCUMENT": 2, "NEXT_CHUNK": 1, "MENTIONS": 0, "CO_OCCURS": 0}
    assert graph.chunk_hashes("d0") == {}


def test_a_failing_transaction_leaves_nothing(graph):
    import neo4j

    graph.upsert_documents([{"id": "keep", "hash": "k"}])

    def work(tx):
        tx.run(UPSERT_DOCUMENTS, rows=_doc_rows(50, "gone")).consume()
        tx.run("UNWIND $rows AS r MERGE (c:Chunk {id: r.id}) SET c.text = r.text",
               rows=[{"id": "gone-chunk", "text": "unicornword"}]).consume()
        tx.run("CALL db.no_such_procedure()").consume()  # fails on the server, after the writes

    with graph._session() as session, pytest.raises(neo4j.exceptions.Neo4jError):
        session.execute_write(work)
    assert graph.counts()["Document"] == 1 and graph.counts()["Chunk"] == 0
    assert graph.document_hashes() == {"keep": "k"}
    assert graph.keyword_search("unicornword") == []


def test_vector_search_returns_the_nearest(graph):
    rng = np.random.default_rng(2)
    rows = _chunk_rows("v", 60, rng)
    graph.upsert_chunks(rows)
    target = rows[17]["embedding"]
    query = target + 0.05 * rng.standard_normal(DIM).astype(np.float32)
    hits = graph.vector_search(query, top_k=5)
    assert hits[0][0] == "v-c17"
    assert len(hits) == 5 and hits[0][1] > hits[1][1]
    exact = sorted(((float(np.dot(r["embedding"], query) / np.linalg.norm(r["embedding"]) / np.linalg.norm(query)),
                     r["id"]) for r in rows), reverse=True)
    assert hits[0][1] == pytest.approx((1 + exact[0][0]) / 2, abs=1e-4)  # Neo4j's score: (1 + cos) / 2
    graph.delete_chunks(["v-c17"])
    assert "v-c17" not in [cid for cid, _ in graph.vector_search(query, top_k=5)]


def test_keyword_search_finds_a_word(graph):
    graph.upsert_chunks([
        {"id": "k1", "doc_id": "kd", "seq": 0, "text": "The zebra crossed the savanna at dawn.", "hash": "1"},
        {"id": "k2", "doc_id": "kd", "seq": 1, "text": "Apples and oranges are fruit.", "hash": "2"},
        {"id": "k3", "doc_id": "kd", "seq": 2, "text": "A zebra, a zebra! Stripes everywhere.", "hash": "3"},
    ])
    hits = graph.keyword_search("zebra", top_k=5)
    assert {cid for cid, _ in hits} == {"k1", "k3"}
    assert hits[0][0] == "k3"  # BM25: two mentions in a shorter text
    assert graph.keyword_search("ORANGES", top_k=1)[0][0] == "k2"
    # Lucene syntax in user text is neutralised, not an error
    for text in ['oranges"', "fruit AND", "text:apples", "(", "*", '"}) MATCH (n) DETACH DELETE n //']:
        graph.keyword_search(text, top_k=3)
    assert graph.keyword_search("  !!  ", top_k=3) == []
    assert graph.counts()["Chunk"] == 3


@pytest.mark.parametrize("nasty", INJECTIONS)
def test_injection_strings_are_stored_literally(graph, nasty):
    graph.upsert_documents([{"id": nasty, "hash": nasty, "title": nasty, "source": nasty}])
    graph.upsert_chunks([{"id": f"chunk:{nasty}", "doc_id": nasty, "seq": 0, "text": nasty, "hash": nasty}])
    graph.set_meta(nasty, nasty)
    assert graph.document_hashes() == {nasty: nasty}
    assert graph.chunk_hashes(nasty) == {f"chunk:{nasty}": nasty}
    assert graph.chunks([f"chunk:{nasty}"])[0]["text"] == nasty
    assert graph.read("MATCH (d:Document {id: $id}) RETURN d.title AS t", id=nasty) == [{"t": nasty}]
    assert graph.get_meta(nasty) == nasty
    assert graph.counts()["Document"] == 1 and graph.counts()["FROM_DOCUMENT"] == 1
    graph.delete_documents([nasty])
    assert graph.counts()["Chunk"] == 0


def test_meta_markers(graph):
    assert graph.get_meta("schema_version") is None
    assert graph.get_meta("schema_version", 0) == 0
    graph.set_meta("schema_version", 1)
    graph.set_meta("schema_version", 2)
    graph.set_meta("embedder", "all-MiniLM-L6-v2")
    assert graph.get_meta("schema_version") == 2 and graph.get_meta("embedder") == "all-MiniLM-L6-v2"
    assert graph.counts()["Meta"] == 1
    with pytest.raises(GraphError):
        graph.set_meta("id", "x")


def test_bad_rows_and_unknown_writes_are_one_line_errors(graph):
    with pytest.raises(GraphError, match="lacks hash"):
        graph.upsert_documents([{"id": "x"}])
    with pytest.raises(GraphError, match="unknown graph write"):
        graph.write("MATCH (n) DETACH DELETE n", [{}])


def test_keyword_terms_drop_query_syntax():
    assert dialects.keyword_terms('Zebra" AND text:apples* (x) zebra') == "zebra and text apples x"
    assert dialects.keyword_terms("?!") == ""


def test_dialect_ddl_uses_only_the_allow_list():
    assert dialects.Neo4jDialect.constraint_ddl("Chunk", "id") == (
        "CREATE CONSTRAINT chunk_id_unique IF NOT EXISTS FOR (n:Chunk) REQUIRE n.id IS UNIQUE")
    with pytest.raises(GraphError):
        dialects.Dialect.constraint_ddl("Chunk) DETACH DELETE (n", "id")
    statements: list[str] = []
    indexes = [vector_row(), fulltext_row()]  # what Neo4j's SHOW INDEXES lists once both were created

    def run(statement: str) -> list[dict]:
        statements.append(statement)
        return indexes if statement.startswith("SHOW INDEXES") else []

    neo4j = dialects.Neo4jDialect(GraphSettings(backend="neo4j"))
    neo4j.ensure_schema(run, 384)
    assert any("CREATE VECTOR INDEX chunk_embedding" in s and "`vector.dimensions`: 384" in s for s in statements)
    assert any(s.startswith("CREATE FULLTEXT INDEX chunk_text") for s in statements)
    assert statements[-1] == f"CALL db.awaitIndexes({dialects.INDEX_ONLINE_TIMEOUT_S})"  # online before use
    indexes[0] = vector_row(dims=768)  # an index left by another embedder: one line, not a later search error
    with pytest.raises(GraphError, match="768-dimensional"):
        neo4j.ensure_schema(run, 384)
    with pytest.raises(GraphError):
        neo4j.ensure_schema(run, "384 }) //")


def test_settings_from_env(monkeypatch, tmp_path):
    for name in ("LLMSHIP_GRAPH_BACKEND", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE",
                 "LLMSHIP_GRAPH_PASSWORD", "LLMSHIP_GRAPH_HTTP_URL"):
        monkeypatch.delenv(name, raising=False)
    s = GraphSettings.from_env(root=str(tmp_path))  # nothing running: the embedded defaults
    assert (s.backend, s.uri, s.user, s.database, s.http_url) == (
        "arcadedb", "bolt://127.0.0.1:7687", "root", "llmship", "http://127.0.0.1:2480")
    monkeypatch.setenv("NEO4J_URI", "neo4j://db.example:7687")
    monkeypatch.setenv("NEO4J_PASSWORD", "pw-from-env")
    s = GraphSettings.from_env(root=str(tmp_path))
    assert (s.backend, s.uri, s.user, s.database) == ("neo4j", "neo4j://db.example:7687", "neo4j", "neo4j")
    assert s.password.get_secret_value() == "pw-from-env" and "pw-from-env" not in repr(s)
    monkeypatch.setenv("LLMSHIP_GRAPH_BACKEND", "arcadedb")
    s = GraphSettings.from_env(root=str(tmp_path))
    assert (s.backend, s.http_url) == ("arcadedb", "http://db.example:2480")
    monkeypatch.setenv("LLMSHIP_GRAPH_BACKEND", "falkordb")
    with pytest.raises(GraphError):
        GraphSettings.from_env(root=str(tmp_path))
