"""The retriever against a real embedded ArcadeDB: each mode, fusion scores, GraphRAG, cache, evaluation."""

from __future__ import annotations

import asyncio
import itertools
import threading

import numpy as np
import pytest

from llmship.errors import GraphError
from llmship.knowledge.graphstore import cypher, dialects
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.ingest.embedding_refresh import ChunkingConfig, CorpusConfig, EmbedConfig, run_embedding_refresh
from llmship.knowledge.kg.update import run_kg_update
from llmship.knowledge.retrieval import fusion
from llmship.knowledge.retrieval.retriever import Retriever, doc_of_chunk
from llmship.rag.recall_eval import evaluate_retrieval
from tests.conftest import free_port

DOCS = {
    "lighthouse.md": "# Brackenholm Light\n\nThe Brackenholm Light stands on Skerry Point. Its keeper, Oswin "
                     "Thackeray, lit the lamp with whale oil until 1921, when the Harrowgate Lamp Company of "
                     "Norwich fitted an electric lantern that can be seen for nineteen miles.\n",
    "lamps.md": "# Harrowgate Lamp Company\n\nYsolde Fairweather founded the Harrowgate Lamp Company in Norwich in "
                "1862. It made brass signal lamps for ships and lenses for coastal lights.\n",
    "cheese.md": "# Quillbury blue\n\nQuillbury blue is a sheep's milk cheese ripened for nine weeks in limestone "
                 "caves near Dunmarrow. The dairy of Marisol Vantongeren presses eighty wheels a day.\n",
    "railway.md": "# Pellingford railway\n\nThe Pellingford narrow-gauge railway climbs 400 metres to Cragmoor. "
                  "Engineer Tobias Ruddlesworth designed its zig-zag reversing stations in 1894.\n",
    "buns.md": "# Saffron buns\n\nBake the saffron buns at 190 degrees for fourteen minutes, until golden. Brush "
               "them with warm honey as soon as they leave the oven.\n",
}
QUESTIONS = [
    {"id": "q1", "question": "How far can the Brackenholm lantern be seen?", "gold": "nineteen miles",
     "doc_id": "lighthouse.md"},
    {"id": "q2", "question": "Where is Quillbury blue ripened?", "gold": "limestone caves near Dunmarrow",
     "doc_id": "cheese.md"},
    {"id": "q3", "question": "Who designed the zig-zag reversing stations?", "gold": "Tobias Ruddlesworth",
     "doc_id": "railway.md"},
    {"id": "q4", "question": "Who founded the Harrowgate Lamp Company?", "gold": "Ysolde  Fairweather",
     "doc_id": "lamps.md"},
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


@pytest.fixture()
def built(graph, embedder, extractor, folder, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "retriever-embeddings.sqlite"
    run_embedding_refresh(CorpusConfig(folder=str(folder)), ChunkingConfig(), EmbedConfig(cache_path=str(cache)),
                          graph=graph, embedder=embedder)
    run_kg_update(graph, extractor, embed=False, progress=False)
    return Retriever(graph, embedder, extractor, reranker=None)


def _chunk_of(graph: GraphStore, doc_id: str) -> str:
    return graph.read("MATCH (c:Chunk {doc_id: $d}) RETURN c.id AS id", d=doc_id)[0]["id"]


@pytest.mark.parametrize(("mode", "query", "doc"), [
    ("dense", "What temperature should the yellow sweet rolls be baked at?", "buns.md"),
    ("keyword", "zig-zag reversing stations", "railway.md"),
    ("hybrid", "Which cheese ripens in limestone caves?", "cheese.md"),
    ("graph", "tell me about marisol vantongeren", "cheese.md"),
])
def test_each_mode_returns_the_right_chunk(built, mode, query, doc):
    hits = asyncio.run(built.retrieve(query, top_k=3, mode=mode))
    assert hits and hits[0].doc_id == doc and hits[0].rank == 1
    assert hits[0].chunk_id == _chunk_of(built.graph, doc)
    assert hits[0].text == DOCS[doc].strip()
    assert hits[0].title == DOCS[doc].split("\n", 1)[0][2:]
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_hybrid_scores_carry_both_components(built):
    hits = asyncio.run(built.retrieve("Quillbury blue sheep's milk cheese", top_k=2, mode="hybrid"))
    top = hits[0]
    assert top.doc_id == "cheese.md"
    assert {"dense", "keyword", "fused"} <= set(top.scores)
    assert 0.5 < top.scores["dense"] <= 1.0 and top.scores["keyword"] > 0
    # the fused score is the convex combination of both searches' z-scored lists (n = max(4 * top_k, 20))
    query = "Quillbury blue sheep's milk cheese"
    dense, keyword = dict(built._dense(query, 20)), dict(built._keyword(query, 20))

    def z(scores, cid):  # a list of one chunk (only cheese.md holds these words) standardises to 0
        values = np.array(list(scores.values()))
        return (scores.get(cid, values.min()) - values.mean()) / values.std() if values.std() > 0 else 0.0
    assert len(dense) == 5 and len(keyword) >= 1
    expected = 0.5 * z(dense, top.chunk_id) + 0.5 * z(keyword, top.chunk_id)
    assert top.score == top.scores["fused"] == pytest.approx(expected)


def test_graph_mode_finds_a_chunk_through_an_entity_and_one_co_occurs_hop(built):
    lexicon_hit = built.query_entities("what did oswin thackeray do?")  # lower case: NER misses it
    assert any("oswin thackeray" in key for key in lexicon_hit)
    hits = asyncio.run(built.retrieve("what did oswin thackeray do?", top_k=5, mode="graph"))
    assert hits[0].doc_id == "lighthouse.md" and hits[0].scores["graph"] > 0
    # lamps.md never names Thackeray: it is reached through Harrowgate Lamp Company (co-occurs in lighthouse.md)
    lamps = [h for h in hits if h.doc_id == "lamps.md"]
    assert lamps and 0 < lamps[0].scores["graph"] < hits[0].scores["graph"]


def test_empty_graph_returns_nothing(graph, embedder):
    retriever = Retriever(graph, embedder, reranker=None)
    for mode in ("dense", "keyword", "hybrid", "graph"):
        assert asyncio.run(retriever.retrieve("anything at all", mode=mode)) == []


def test_graph_down_is_one_graph_error(embedder):
    import neo4j

    settings = GraphSettings(uri=f"bolt://127.0.0.1:{free_port()}", connect_timeout_s=1.0)
    driver = neo4j.GraphDatabase.driver(settings.uri, auth=("root", ""), connection_timeout=1.0,
                                        max_transaction_retry_time=0.5)
    store = GraphStore(driver, settings, dialects.dialect_for(settings))
    try:
        with pytest.raises(GraphError) as err:
            asyncio.run(Retriever(store, embedder, reranker=None).retrieve("a question", mode="hybrid"))
        assert "\n" not in str(err.value)
    finally:
        store.close()


def test_query_embedding_cache_counts_hits(built):
    before = built.cache_info()
    asyncio.run(built.retrieve("saffron buns with honey", mode="dense"))
    asyncio.run(built.retrieve("saffron buns with honey", mode="hybrid"))
    after = built.cache_info()
    assert after.misses == before.misses + 1 and after.hits == before.hits + 1 and after.size == before.size + 1


def test_evaluate_retrieval_on_literal_questions(built):
    report = evaluate_retrieval(built, QUESTIONS, k=5)
    assert set(report.modes) == {"dense", "keyword", "hybrid", "graph"}
    assert report.modes["hybrid"].recall == 1.0 and report.modes["hybrid"].doc_recall == 1.0
    assert report.modes["hybrid"].mrr > 0.5 and report.modes["hybrid"].p95_ms > 0
    assert "hybrid" in report.table()


def test_default_is_fusion_without_a_reranker(graph, embedder, extractor, built):
    retriever = Retriever(graph, embedder, extractor)  # reranker="default": none (measured: the re-score hurt)
    assert retriever.reranker is None
    hits = asyncio.run(retriever.retrieve("Which cheese ripens in limestone caves?", top_k=2, mode="hybrid"))
    assert hits[0].doc_id == "cheese.md" and hits[0].score == hits[0].scores["fused"]


def test_embedding_rescore_reorders_the_fused_pool(graph, embedder, extractor, built):
    from llmship.knowledge.retrieval.rerank import make_reranker

    retriever = Retriever(graph, embedder, extractor, reranker=make_reranker("embedding"))
    hits = asyncio.run(retriever.retrieve("Which cheese ripens in limestone caves?", top_k=2, mode="hybrid"))
    assert hits[0].doc_id == "cheese.md" and {"dense", "keyword", "fused", "embedding"} <= set(hits[0].scores)
    assert hits[0].score == hits[0].scores["embedding"]


def test_document_fusion_ranks_a_documents_chunks_together(graph, embedder, extractor, built):
    retriever = Retriever(graph, embedder, extractor, reranker=None, fusion_level="document")
    hits = asyncio.run(retriever.retrieve("Which cheese ripens in limestone caves?", top_k=3, mode="hybrid"))
    query = "Which cheese ripens in limestone caves?"
    expected = fusion.by_document({"dense": dict(built._dense(query, 20)), "keyword": dict(built._keyword(query, 20))},
                                  {"dense": 0.5, "keyword": 0.5}, doc_of_chunk)
    assert hits[0].doc_id == "cheese.md"
    assert [h.scores["fused"] for h in hits] == pytest.approx(sorted(expected.values(), reverse=True)[:3])


def test_cross_encoder_offline_is_one_clear_error():
    from llmship.knowledge.retrieval.rerank import CrossEncoderReranker, RerankError

    with pytest.raises(RerankError) as err:
        CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L-6-v2")
    assert "cross-encoder" in str(err.value) and "\n" not in str(err.value)


def test_keyword_search_uses_the_graphs_index_until_the_memory_index_is_built(built):
    """A new retriever answers keyword queries from its first request: the graph's full-text index serves until
    the in-memory BM25 index is built, and both find the chunk. A second retriever given the first's index (an
    evaluation's scoring and timing pair) reads the chunk texts no second time."""
    from llmship.knowledge.retrieval.keywords import KeywordIndexCache

    release = threading.Event()
    calls = []

    def slow_load():
        calls.append(1)
        release.wait(30)
        return built.graph.read(cypher.CHUNK_TEXTS)

    fresh = Retriever(built.graph, built.embedder, reranker=None, keyword_index=KeywordIndexCache(slow_load))
    twin = Retriever(built.graph, built.embedder, reranker=None, keyword_index=fresh.keyword_index)
    before = asyncio.run(fresh.retrieve("zig-zag reversing stations", top_k=1, mode="keyword"))
    assert calls and before and before[0].doc_id == "railway.md"
    release.set()
    assert fresh.keyword_index.get(wait=True) is not None
    after = asyncio.run(fresh.retrieve("zig-zag reversing stations", top_k=1, mode="keyword"))
    assert after[0].chunk_id == before[0].chunk_id
    assert after[0].scores["keyword"] != before[0].scores["keyword"]  # BM25 in memory, not the graph's score
    shared = asyncio.run(twin.retrieve("zig-zag reversing stations", top_k=1, mode="keyword"))
    assert shared[0].scores["keyword"] == after[0].scores["keyword"] and len(calls) == 1


def test_a_long_query_sends_the_rarest_terms_and_works(built):
    """An 8,000-character query (a pasted page) is one keyword search of at most MAX_TERMS terms: on ArcadeDB
    it answers, and it stays far under Neo4j's 1,024-clause limit; its rarest word still finds its chunk."""
    from llmship.knowledge.retrieval.keywords import MAX_TERMS

    index = built.keyword_index.get(wait=True)
    assert index is not None and index.stats.chunks == len(DOCS)
    stats = index.stats
    filler = " ".join(f"w{i}" for i in range(1700))  # 1,700 distinct terms no chunk holds
    query = f"The the of and Ruddlesworth designed stations {filler}"[:8000]
    assert len(query) == 8000 and len(dialects.keyword_terms(query).split()) > 1024
    terms = built.keyword_terms(query)
    assert set(terms) == {"ruddlesworth", "designed", "stations"}  # stop words and unindexed words gone
    hits = asyncio.run(built.retrieve(query, top_k=1, mode="keyword"))  # the in-memory index
    assert hits and hits[0].doc_id == "railway.md"
    # the graph's full-text index, which answers until the in-memory one is built, takes the same terms
    found = built.graph.keyword_search(" ".join(terms), 1)
    assert found and found[0][0].startswith("railway.md#")
    # more indexed words than the cap: the rarest stay, the commonest go
    every_word = " ".join(" ".join(DOCS.values()).split())
    terms = built.keyword_terms(every_word)
    assert len(terms) == MAX_TERMS
    assert all(stats.df[t] == 1 for t in terms)  # all of them are in one chunk only


def test_graph_mode_can_hop_through_the_gcns_entity_vectors(graph, embedder, extractor, built):
    run_kg_update(graph, extractor, embed=True, progress=False)  # trains the GCN, writes Entity.graph_embedding
    retriever = Retriever(graph, embedder, extractor, reranker=None, graph_neighbours="gcn")
    keys = retriever.query_entities("what did oswin thackeray do?")
    stored = {r["key"]: np.asarray(r["v"], dtype=np.float64) for r in graph.read(
        "MATCH (e:Entity) WHERE e.graph_embedding IS NOT NULL RETURN e.key AS key, e.graph_embedding AS v")}
    unit = {k: v / np.linalg.norm(v) for k, v in stored.items()}
    centre = np.mean([unit[k] for k in keys], axis=0)
    centre /= np.linalg.norm(centre)
    expected = sorted(((k, float(unit[k] @ centre)) for k in unit if k not in keys), key=lambda kv: -kv[1])
    nearest = retriever._lexicon_now().nearest(keys, 3)
    assert nearest and len(nearest) == len([k for k, s in expected[:3] if s > 0])
    # the same scores in the same order, and each key scored as the float64 reference scores it: two entities
    # the GCN put on one vector (cosine 1.0 both) may come in either order, float32 against float64
    assert [s for _, s in nearest] == pytest.approx([s for k, s in expected[:len(nearest)]], abs=1e-5)
    reference = dict(expected)
    assert len({k for k, _ in nearest}) == len(nearest)
    assert all(reference[k] == pytest.approx(s, abs=1e-5) for k, s in nearest)
    hits = asyncio.run(retriever.retrieve("what did oswin thackeray do?", top_k=5, mode="graph"))
    assert hits[0].doc_id == "lighthouse.md" and hits[0].scores["graph"] > 0
