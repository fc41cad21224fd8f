"""A graph that goes away is ONE ``GraphUnavailable`` line (what happened, what to do), never a raw driver error;
and ``apply_plan`` reports each committed batch, in write order (documents' hashes last).

The outage here is real: a driver pointed at a port nobody listens on (the reliability tests kill a live server,
tests/reliability/test_graph_faults.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from llmship.errors import GraphError, GraphUnavailable
from llmship.knowledge.cache import EmbeddingCache
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore, graph_job
from llmship.knowledge.ingest.chunking import chunk_documents
from llmship.knowledge.ingest.documents import load_documents
from llmship.knowledge.ingest.embedding_refresh import Corpus, apply_plan, plan
from tests.conftest import free_port


@pytest.fixture()
def dead_store():
    """A GraphStore whose server is not there (nothing listens on its Bolt or HTTP port)."""
    settings = GraphSettings(uri=f"bolt://127.0.0.1:{free_port()}", http_url=f"http://127.0.0.1:{free_port()}",
                             password="whatever-long", connect_timeout_s=1.0, max_retry_time_s=0.3)
    store = GraphStore.connect(settings, verify=False)
    try:
        yield store
    finally:
        store.close()


def _assert_one_line(err: BaseException) -> str:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text and len(text) < 500
    assert err.__cause__ is None and err.__suppress_context__  # no driver traceback chained underneath
    return text


@pytest.mark.parametrize("call", ["read", "write", "write_together", "counts", "upsert_chunks"])
def test_every_graph_call_on_a_vanished_server_is_one_line(dead_store, call):
    uri = dead_store.settings.uri
    calls = {
        "read": lambda: dead_store.read("MATCH (c:Chunk {id: $id}) RETURN c.id AS id", id="x"),
        "write": lambda: dead_store.write("kg_mark_chunks", [{"id": "x", "hash": "h"}]),
        "write_together": lambda: dead_store.write_together([("kg_mark_chunks", [{"id": "x", "hash": "h"}])],
                                                            what="mentions batch 1/3"),
        "counts": dead_store.counts,
        "upsert_chunks": lambda: dead_store.upsert_chunks([{"id": "x#0", "doc_id": "x", "seq": 0, "text": "t",
                                                            "hash": "h"}]),
    }
    with pytest.raises(GraphUnavailable) as caught:
        calls[call]()
    err = caught.value
    text = _assert_one_line(err)
    during = {"write": "kg_mark_chunks", "write_together": "mentions batch 1/3"}.get(call, call)
    assert text.startswith(f"the graph at {uri} went away during {during} (ServiceUnavailable: ")
    assert "Connection refused" in text and "ResolvedIPv4Address" not in text  # the reason, not the noise
    assert text.endswith("start it again (`llmship graph start`) and retry")
    assert isinstance(err, GraphError) and err.status == 503 and err.code == "graph_unavailable"
    assert (err.where, err.during, err.job) == (uri, during, None)


def test_a_pipeline_function_names_itself_and_says_a_rerun_is_safe(dead_store):
    @graph_job("embedding_refresh")
    def refresh(graph: GraphStore) -> None:
        inner(graph)

    @graph_job("kg_update")
    def inner(graph: GraphStore) -> None:  # the innermost job wins (a refresh calling kg_update names kg_update)
        graph.write("kg_mark_chunks", [{"id": "x", "hash": "h"}])

    with pytest.raises(GraphUnavailable) as caught:
        refresh(dead_store)
    text = _assert_one_line(caught.value)
    uri = dead_store.settings.uri
    assert text.startswith(f"the graph at {uri} went away during kg_update (kg_mark_chunks: ServiceUnavailable: ")
    assert text.endswith("): start it again (`llmship graph start`) and re-run kg_update; the run is safe to repeat")
    assert caught.value.job == "kg_update"


def test_other_graph_errors_pass_through_graph_job_unchanged(graph):
    @graph_job("kg_update")
    def bad(store: GraphStore) -> None:
        store.write("no such statement", [{}])

    with pytest.raises(GraphError, match="unknown graph write") as caught:
        bad(graph)
    assert not isinstance(caught.value, GraphUnavailable)


def test_the_neo4j_backend_says_to_bring_neo4j_back():
    settings = GraphSettings(backend="neo4j", uri=f"bolt://127.0.0.1:{free_port()}", password="whatever-long",
                             connect_timeout_s=1.0, max_retry_time_s=0.2)
    with GraphStore.connect(settings, verify=False) as store, pytest.raises(GraphUnavailable) as caught:
        store.read("RETURN 1 AS one")
    assert str(caught.value).endswith("bring the Neo4j server back and retry")


def test_schema_over_arcadedb_http_on_a_vanished_server_is_one_line(dead_store):
    with pytest.raises(GraphUnavailable) as caught:
        dead_store.ensure_schema()
    text = _assert_one_line(caught.value)
    assert text.startswith(f"the graph at {dead_store.settings.uri} went away during schema (HTTP API "
                           f"{dead_store.settings.http_url}: ConnectError: ")


def test_retry_time_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:7999")
    monkeypatch.setenv("LLMSHIP_GRAPH_MAX_RETRY_S", "0.5")
    assert GraphSettings.from_env().max_retry_time_s == 0.5
    monkeypatch.delenv("LLMSHIP_GRAPH_MAX_RETRY_S")
    assert GraphSettings.from_env().max_retry_time_s == 15.0


def _words(texts):
    return [len(t.split()) + 2 for t in texts]  # a whitespace tokenizer with [CLS] and [SEP]


def test_apply_plan_reports_each_committed_batch_documents_last(graph_server, graph, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"d{i}.md").write_text(f"# Doc {i}\n\n" + " ".join(f"Sentence {j} of doc {i}." for j in range(40)))
    loaded = load_documents(folder)
    corpus = Corpus(documents=loaded.documents, chunks=chunk_documents(loaded.documents, _words, 40, 0))
    assert corpus.chunk_count > 6
    rng = np.random.default_rng(0)
    settings = graph.settings.model_copy(update={"batch_size": 4})
    heard: list[tuple[str, int, int]] = []
    with GraphStore.connect(settings) as store, EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        cache.put_many("words", {c.hash: rng.standard_normal(384).astype(np.float32)
                                 for cs in corpus.chunks.values() for c in cs})
        report = apply_plan(corpus, plan(corpus, store), store, cache, "words",
                            on_batch=lambda *progress: heard.append(progress))
    n = corpus.chunk_count
    chunk_batches = [(("chunks", min(done, n), n)) for done in range(4, n + 4, 4)]
    assert heard == chunk_batches + [("documents", 3, 3)]  # nothing to delete; hashes after every chunk
    assert report.chunks_written == n and report.documents_written == 3
    assert graph.counts()["Chunk"] == n and set(graph.document_hashes()) == {"d0.md", "d1.md", "d2.md"}


class _CountedSessions:
    """Counts the sessions a store opens on its (real) driver: each one is a call that waits out the retries."""

    def __init__(self, store: GraphStore) -> None:
        self.count = 0
        self._open = store._driver.session
        store._driver.session = self

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self._open(*args, **kwargs)


def _dead(**overrides) -> GraphStore:
    settings = GraphSettings(uri=f"bolt://127.0.0.1:{free_port()}", password="whatever-long", connect_timeout_s=1.0,
                             max_retry_time_s=0.2, **overrides)
    return GraphStore.connect(settings, verify=False)


def test_a_serving_store_fails_fast_while_the_graph_is_down():
    """``fail_fast_s``: after one call found the graph unreachable, the next calls raise the same one line without
    touching the driver; once the window has passed, the driver is asked again."""
    with _dead(fail_fast_s=0.5) as store:
        sessions = _CountedSessions(store)
        with pytest.raises(GraphUnavailable) as first:
            store.read("RETURN 1 AS x")
        assert sessions.count == 1
        with pytest.raises(GraphUnavailable) as again:
            store.write("kg_mark_chunks", [{"id": "x", "hash": "h"}])
        assert sessions.count == 1  # answered from the open window
        text = _assert_one_line(again.value)
        assert "during kg_mark_chunks (ServiceUnavailable: " in text and "Connection refused" in text
        assert again.value.code == "graph_unavailable" and again.value.where == first.value.where
        time.sleep(0.6)
        with pytest.raises(GraphUnavailable):
            store.read("RETURN 1 AS x")
        assert sessions.count == 2  # the window closed: the driver was asked again (and opened a new window)


def test_without_fail_fast_every_call_asks_the_driver():
    """The default (pipelines): every call waits out the driver's own retries, so a server coming back mid-run is
    found by the next call."""
    with _dead() as store:
        sessions = _CountedSessions(store)
        for _ in range(2):
            with pytest.raises(GraphUnavailable):
                store.read("RETURN 1 AS x")
        assert sessions.count == 2


def test_a_retrieval_on_a_down_graph_pays_one_retry_period(embedder):
    """What the retrieval service gets: a search on a down graph made several graph calls (the version marker,
    dense and keyword search, the empty-graph check, ...), each waiting out the retries; with the window only the
    first reaches the driver, and the 503 is the same."""
    import asyncio

    from llmship.knowledge.retrieval.retriever import Retriever

    calls = {}
    for fail_fast in (0.0, 30.0):
        with _dead(fail_fast_s=fail_fast) as store:
            sessions = _CountedSessions(store)
            retriever = Retriever(store, embedder, reranker=None, version_poll_s=0.0)
            with pytest.raises(GraphUnavailable) as caught:
                asyncio.run(retriever.candidates("Where is the lighthouse?", 5, "hybrid"))
            assert caught.value.status == 503 and caught.value.code == "graph_unavailable"
            calls[fail_fast] = sessions.count
    assert calls[0.0] >= 4 and calls[30.0] == 1, calls
