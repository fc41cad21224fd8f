"""kg_update against a real embedded ArcadeDB: incremental, convergent, kill-safe; embeddings on every entity."""

from __future__ import annotations

import hashlib

import pytest

from llmship.errors import GraphError
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.kg.graph_embeddings import GcnConfig
from llmship.knowledge.kg.update import run_kg_update
from tests.conftest import free_port

INJECTION = "'}) MATCH (n) DETACH DELETE n // said Tomas Kell of Harbour Works & Co in Glasgow."
TEXTS = {
    "d1#0": "Ada Brenner founded Vellmark Ferries Ltd in Carrow Bay in 1987. She ran it from an office in Vellhaven.",
    "d1#1": "Brenner later sold Vellmark Ferries to Ora Quill. Quill moved the company to Vellhaven.",
    "d2#0": "The Corran Prize was awarded to Liesl Pascoe in London. Pascoe thanked the Vellhaven School of Commerce.",
    "d2#1": "Liesl Pascoe was born in Carrow Bay and studied in Paris with Ada Brenner.",
    "d3#0": INJECTION,
    "d3#1": "Tomas Kell visited London and Paris for Harbour Works.",
}
SMALL_GCN = GcnConfig(dim=8, hidden=16, epochs=30)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _load(graph: GraphStore, texts: dict[str, str]) -> None:
    doc_ids = sorted({cid.split("#")[0] for cid in texts})
    graph.upsert_documents([{"id": d, "hash": _sha(d), "title": f"doc {d}"} for d in doc_ids])
    graph.upsert_chunks([{"id": cid, "doc_id": cid.split("#")[0], "seq": int(cid.split("#")[1]), "text": text,
                          "hash": _sha(text)} for cid, text in texts.items()])


def snapshot(graph: GraphStore, embeddings: bool = False) -> dict:
    """Everything kg_update owns, in a comparable form."""
    entities = graph.read("MATCH (e:Entity) RETURN e.key AS key, e.name AS name, e.label AS label, "
                          "e.aliases AS aliases, e.mention_count AS mention_count, e.chunk_count AS chunk_count, "
                          "e.graph_embedding AS graph_embedding")
    if not embeddings:
        for e in entities:
            e.pop("graph_embedding")
    mentions = graph.read("MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity) "
                          "RETURN c.id AS chunk, e.key AS key, m.count AS count, m.surfaces AS surfaces")
    co = graph.read("MATCH (a:Entity)-[x:CO_OCCURS]->(b:Entity) RETURN a.key AS a, b.key AS b, x.weight AS w")
    marks = graph.read("MATCH (c:Chunk) RETURN c.id AS id, c.kg_hash = c.hash AS done")
    return {"entities": sorted(entities, key=lambda e: e["key"]),
            "mentions": sorted(mentions, key=lambda m: (m["chunk"], m["key"])),
            "co_occurs": sorted(co, key=lambda r: (r["a"], r["b"])),
            "marks": sorted(({"id": r["id"], "done": bool(r["done"])} for r in marks), key=lambda r: r["id"]),
            "counts": graph.counts()}


def test_first_run_then_rerun_does_nothing(graph, extractor):
    _load(graph, TEXTS)
    report = run_kg_update(graph, extractor, batch_size=4, gcn=SMALL_GCN, progress=False)
    assert (report.chunks_pending, report.chunks_processed, report.batches) == (6, 6, 2)
    assert report.mentions == 22 and report.entities == 13 and report.entities_removed == 0
    counts = graph.counts()
    assert counts["Document"] == 3 and counts["Chunk"] == 6 and counts["NEXT_CHUNK"] == 3  # injection inert
    assert (counts["Entity"], counts["MENTIONS"], counts["CO_OCCURS"]) == (13, 22, report.co_occurs)
    assert graph.chunks(["d3#0"])[0]["text"] == INJECTION

    first = snapshot(graph, embeddings=True)
    by_key = {e["key"]: e for e in first["entities"]}
    ferries = by_key["ORG:vellmark ferries"]  # one mention each: the tie goes to the longer form
    assert (ferries["name"], ferries["aliases"]) == ("Vellmark Ferries Ltd", ["Vellmark Ferries"])
    assert by_key["PERSON:ada brenner"]["mention_count"] == 2
    assert by_key["PLACE:carrow bay"]["label"] == "PLACE"
    assert by_key["ORG:vellhaven"]["mention_count"] == 2  # once GPE, once ORG: one entity (tie: alphabetical)
    assert by_key["ORG:harbour works"]["chunk_count"] == 2
    weights = {(r["a"], r["b"]): r["w"] for r in first["co_occurs"]}
    assert weights[("PERSON:ada brenner", "PLACE:carrow bay")] == 2
    assert all(a < b for a, b in weights)
    assert all(len(e["graph_embedding"]) == SMALL_GCN.dim for e in first["entities"])
    assert report.embedding is not None and report.embedding.written == 13 and report.embedding.test_edges > 0
    assert 0.0 <= report.embedding.auc <= 1.0

    again = run_kg_update(graph, extractor, batch_size=4, gcn=SMALL_GCN, progress=False)
    assert (again.chunks_pending, again.chunks_processed, again.mentions) == (0, 0, 0)
    assert (again.entities_updated, again.entities_removed, again.co_occurs_written, again.co_occurs_removed) \
        == (0, 0, 0, 0)
    assert again.embedding.skipped and again.embedding.auc == report.embedding.auc
    assert snapshot(graph, embeddings=True) == first


def test_changed_chunk_only_is_processed_and_converges(graph, extractor):
    _load(graph, TEXTS)
    run_kg_update(graph, extractor, embed=False, progress=False)
    changed = dict(TEXTS, **{"d3#1": "Tomas Kell flew from Glasgow to Carrow Bay with Ada Brenner."})
    _load(graph, changed)
    report = run_kg_update(graph, extractor, embed=False, progress=False)
    assert (report.chunks_pending, report.chunks_processed) == (1, 1)
    incremental = snapshot(graph)
    keys = {e["key"] for e in incremental["entities"]}
    assert "ORG:harbour works" in keys  # still mentioned in d3#0
    by_key = {e["key"]: e for e in incremental["entities"]}
    assert by_key["PLACE:glasgow"]["chunk_count"] == 2 and by_key["PLACE:london"]["chunk_count"] == 1
    graph.clear()
    _load(graph, changed)
    run_kg_update(graph, extractor, embed=False, progress=False)
    assert snapshot(graph) == incremental


def test_deleted_chunk_removes_entities_left_without_mentions(graph, extractor):
    _load(graph, TEXTS)
    run_kg_update(graph, extractor, embed=False, progress=False)
    assert any(e["key"] == "PLACE:glasgow" for e in snapshot(graph)["entities"])
    graph.delete_chunks(["d3#0"])
    report = run_kg_update(graph, extractor, gcn=SMALL_GCN, progress=False)
    assert report.chunks_processed == 0 and report.entities_removed == 1  # Glasgow
    after = snapshot(graph, embeddings=True)
    by_key = {e["key"]: e for e in after["entities"]}
    assert "PLACE:glasgow" not in by_key
    assert by_key["ORG:harbour works"] | {"graph_embedding": None} == {
        "key": "ORG:harbour works", "name": "Harbour Works", "label": "ORG", "aliases": [], "mention_count": 1,
        "chunk_count": 1, "graph_embedding": None}
    assert not any("PLACE:glasgow" in (r["a"], r["b"]) for r in after["co_occurs"])
    assert all(len(e["graph_embedding"]) == SMALL_GCN.dim for e in after["entities"])  # retrained
    assert not report.embedding.skipped


def test_run_killed_half_way_then_rerun_equals_an_uninterrupted_run(graph, extractor):
    _load(graph, TEXTS)

    def killed(batches_done: int, chunks_done: int) -> None:
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        run_kg_update(graph, extractor, batch_size=2, gcn=SMALL_GCN, progress=False, on_batch=killed)
    marks = {r["id"]: r["done"] for r in snapshot(graph)["marks"]}
    assert marks == {"d1#0": True, "d1#1": True, "d2#0": False, "d2#1": False, "d3#0": False, "d3#1": False}
    resumed = run_kg_update(graph, extractor, batch_size=2, gcn=SMALL_GCN, progress=False)
    assert resumed.chunks_processed == 4
    after_kill = snapshot(graph, embeddings=True)

    graph.clear()
    _load(graph, TEXTS)
    whole = run_kg_update(graph, extractor, batch_size=2, gcn=SMALL_GCN, progress=False)
    assert whole.chunks_processed == 6
    assert snapshot(graph, embeddings=True) == after_kill
    assert resumed.embedding.auc == whole.embedding.auc


def test_graph_down_is_one_graph_error():
    settings = GraphSettings(uri=f"bolt://127.0.0.1:{free_port()}", connect_timeout_s=2.0)
    with pytest.raises(GraphError) as err:
        GraphStore.connect(settings)
    assert "\n" not in str(err.value)
