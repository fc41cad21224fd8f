"""Kill the graph server (SIGKILL, the real ArcadeDB JVM process) in the middle of embedding_refresh and kg_update.

What must hold, each time:

1. the run fails with ONE ``GraphUnavailable`` line that says what happened (the graph at <uri> went away during
   <pipeline> (<operation>: <reason>)) and what to do (start it again and re-run; the run is safe to repeat),
   not a neo4j ``ServiceUnavailable`` traceback;
2. what the server committed before it died survives the restart, and the pipeline's done-marks (a document's
   ``hash``, a chunk's ``kg_hash``) are missing exactly where the run did not finish;
3. a re-run after ``server.start`` on the same data folder converges to the graph a clean, uninterrupted run
   writes on another server over the same corpus: the same node count per label, relationship count per type
   (counted with ``labels(n)`` / ``type(r)``, every label and type, not only the schema's), and the same content.

The kill comes from the pipeline's own progress hook (``on_batch``) or, for the ZenML steps, which take no hook,
from a logging handler on the pipeline's per-batch DEBUG record. The hook starts the SIGKILL on another thread
and returns, so the kill lands while the run goes on (usually inside the next transaction); any later batch
waits until the server is dead, so the run cannot finish first. The driver retries a lost transaction for
``max_retry_time_s``, set to 0.3 s here (one retry, after about a second).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Self

import pytest

from llmship import procs
from llmship.errors import GraphUnavailable
from llmship.knowledge.graphstore import server
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.ingest.embedding_refresh import (
    ChunkingConfig,
    CorpusConfig,
    EmbedConfig,
    load_corpus,
    plan,
    run_embedding_refresh,
)
from llmship.knowledge.kg.entities import EntityConfig
from llmship.knowledge.kg.graph_embeddings import GcnConfig
from llmship.knowledge.kg.update import run_kg_update
from tests.conftest import NEO4J, REPO, free_port

pytestmark = pytest.mark.skipif(NEO4J, reason="kills the embedded ArcadeDB it starts; a shared Neo4j is not ours")

DOCS = 24  # people/*.md|txt|html from the demo corpus
GRAPH_BATCH = 16  # rows per write transaction on the killed server: several batches before and after the kill
KG_BATCH = 16
SMALL_GCN = GcnConfig(dim=8, hidden=16, epochs=30)
MARKS = {"embedding_refresh": "Document.hash", "kg_update": "Chunk.kg_hash"}

NODE_COUNTS = "MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n"
REL_COUNTS = "MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n"
DOCUMENTS = "MATCH (d:Document) RETURN d.id AS id, d.hash AS hash, d.title AS title, d.source AS source"
CHUNKS = ("MATCH (c:Chunk)-[:FROM_DOCUMENT]->(d:Document) RETURN c.id AS id, d.id AS doc, c.seq AS seq, "
          "c.hash AS hash, c.text AS text, c.start_char AS start, c.end_char AS end, c.kg_hash AS kg_hash, "
          "size(c.embedding) AS dim")
NEXT = "MATCH (a:Chunk)-[:NEXT_CHUNK]->(b:Chunk) RETURN a.id AS a, b.id AS b"
ENTITIES = ("MATCH (e:Entity) RETURN e.key AS key, e.name AS name, e.label AS label, e.aliases AS aliases, "
            "e.mention_count AS mention_count, e.chunk_count AS chunk_count, e.graph_embedding AS embedding")
MENTIONS = ("MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity) "
            "RETURN c.id AS chunk, e.key AS key, m.count AS count, m.surfaces AS surfaces")
CO_OCCURS = "MATCH (a:Entity)-[x:CO_OCCURS]->(b:Entity) RETURN a.key AS a, b.key AS b, x.weight AS weight"
META = "MATCH (m:Meta {id: $id}) RETURN m.embedding_refresh_version AS version, " \
       "m.kg_embedding_fingerprint AS fingerprint, m.kg_embedding_auc AS auc"
UNMARKED_DOCUMENTS = "MATCH (d:Document) WHERE d.hash IS NULL RETURN count(d) AS n"
MARKED_CHUNKS = "MATCH (c:Chunk) WHERE c.kg_hash = c.hash RETURN count(c) AS n"


# ---- what a graph holds -----------------------------------------------------------------------------------------

def shape(store: GraphStore) -> dict[str, int]:
    """Nodes per label and relationships per type: every one the server has, not only the schema's."""
    counts = {f":{r['label']}": r["n"] for r in store.read(NODE_COUNTS)}
    counts |= {f"[{r['type']}]": r["n"] for r in store.read(REL_COUNTS)}
    return counts


def content(store: GraphStore) -> dict[str, list]:
    def rows(statement: str, **params) -> list:
        return sorted((tuple(sorted(r.items())) for r in store.read(statement, **params)), key=repr)

    return {"documents": rows(DOCUMENTS), "chunks": rows(CHUNKS), "next": rows(NEXT), "entities": rows(ENTITIES),
            "mentions": rows(MENTIONS), "co_occurs": rows(CO_OCCURS), "meta": rows(META, id="meta")}


def scalar(store: GraphStore, statement: str) -> int:
    return store.read(statement)[0]["n"]


# ---- the killed server ------------------------------------------------------------------------------------------

def sigkill(pid: int) -> None:
    """SIGKILL the server's process group (the JVM runs inside its one Python process) and reap it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while procs.alive(pid):
        assert time.monotonic() < deadline, f"the graph server (pid {pid}) outlived SIGKILL by 60 s"
        time.sleep(0.02)


class Killer:
    """A progress hook: on the ``at``-th call, SIGKILL the server on another thread and return (the run goes on
    into the kill); every later call waits until the server is dead."""

    def __init__(self, pid: int, at: int = 1) -> None:
        self.pid, self.at, self.calls = pid, at, 0
        self.thread: threading.Thread | None = None

    def __call__(self, *_progress) -> None:
        self.calls += 1
        if self.calls == self.at:
            self.thread = threading.Thread(target=sigkill, args=(self.pid,), daemon=True)
            self.thread.start()
        elif self.thread is not None:
            self.thread.join()

    @property
    def fired(self) -> bool:
        if self.thread is None:
            return False
        self.thread.join()
        return not procs.alive(self.pid)


class KillOnLog(logging.Handler):
    """Calls ``killer`` for each record of ``logger`` matching ``pattern`` (the per-batch DEBUG progress line)."""

    def __init__(self, logger: str, pattern: str, killer: Killer) -> None:
        super().__init__(logging.DEBUG)
        self.logger, self.pattern, self.killer = logging.getLogger(logger), re.compile(pattern), killer

    def emit(self, record: logging.LogRecord) -> None:
        if self.pattern.search(record.getMessage()):
            self.killer()

    def __enter__(self) -> Self:
        self.level_before = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


class Victim:
    """A dedicated ArcadeDB (own data folder, own ports) that the tests kill and start again on the same data."""

    def __init__(self, root: Path) -> None:
        self.root, self.bolt, self.http = root, free_port(), free_port()
        self.info = self.start()

    def start(self) -> server.GraphServerInfo:
        self.info = server.start(bolt_port=self.bolt, http_port=self.http, root=self.root)
        return self.info

    def store(self, **overrides) -> GraphStore:
        settings = GraphSettings.for_server(self.info, self.root, max_retry_time_s=0.3, **overrides)
        return GraphStore.connect(settings)

    def env(self) -> dict[str, str]:
        """What a ZenML step's ``connect()`` reads to find this server."""
        return {"LLMSHIP_GRAPH_BACKEND": "arcadedb", "NEO4J_URI": self.info.uri, "NEO4J_DATABASE": self.info.database,
                "NEO4J_PASSWORD": server.password(self.root, create=False), "LLMSHIP_GRAPH_HTTP_URL": self.info.http_url,
                "LLMSHIP_GRAPH_MAX_RETRY_S": "0.3", "LLMSHIP_GRAPH_BATCH_SIZE": str(GRAPH_BATCH)}


def assert_one_clear_line(err: BaseException, victim: Victim, job: str) -> str:
    line = str(err)
    assert type(err) is GraphUnavailable and err.job == job
    assert "\n" not in line and len(line) < 400, line
    assert err.__cause__ is None and err.__suppress_context__, "the driver's traceback is not chained"
    assert line.startswith(f"the graph at {victim.info.uri} went away during {job} ("), line
    assert line.endswith(f"start it again (`llmship graph start`) and re-run {job}; the run is safe to repeat"), line
    assert re.search(r"(ServiceUnavailable|SessionExpired|IncompleteCommit|ConnectError|RemoteProtocolError|"
                     r"ReadError)\b", line), line  # the driver's reason, shortened
    return line


# ---- fixtures ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-corpus")
    for src in sorted((REPO / "data/corpus/docs/people").iterdir())[:DOCS]:
        shutil.copy(src, folder / src.name)
    cache = tmp_path_factory.mktemp("fault-cache") / "embeddings.sqlite"
    return (CorpusConfig(folder=str(folder)), ChunkingConfig(max_tokens=120, overlap_tokens=20),
            EmbedConfig(cache_path=str(cache)))


def refresh(store: GraphStore, configs, embedder, **kwargs):
    return run_embedding_refresh(*configs, graph=store, embedder=embedder, version="v1", **kwargs)


@pytest.fixture(scope="module")
def reference(graph_server, configs, embedder, extractor):
    """A clean, uninterrupted embedding_refresh and kg_update on another server (the session's), default batch
    sizes: what every interrupted-then-repeated run must end up equal to."""
    with GraphStore.connect(GraphSettings.for_server(graph_server)) as store:
        store.clear()
        report = refresh(store, configs, embedder)
        assert report.chunks > 4 * GRAPH_BATCH and report.documents == DOCS
        after_refresh = (shape(store), content(store))
        kg = run_kg_update(store, extractor, gcn=SMALL_GCN, progress=False)
        assert kg.chunks_processed > 4 * KG_BATCH and kg.entities > 50 and kg.co_occurs > 0
        after_kg = (shape(store), content(store))
        store.clear()
    return {"embedding_refresh": after_refresh, "kg_update": after_kg}


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    killed = Victim(tmp_path_factory.mktemp("victim-graph"))
    try:
        yield killed
    finally:
        server.stop(killed.root)


def restarted_and_partial(victim: Victim, job: str, expected: dict[str, int]) -> None:
    """Start the killed server again on its data; the batches it committed are there, the rest is not marked."""
    assert not procs.alive(victim.info.pid)
    victim.start()
    with victim.store() as store:
        if job == "embedding_refresh":
            chunks = shape(store).get(":Chunk", 0)
            assert GRAPH_BATCH <= chunks < expected[":Chunk"]  # the first batch survived the kill; not all did
            assert scalar(store, UNMARKED_DOCUMENTS) == shape(store)[":Document"]  # no document marked done
        else:
            marked = scalar(store, MARKED_CHUNKS)
            assert KG_BATCH <= marked < expected[":Chunk"]  # chunks marked per committed batch, and only those


def assert_converged(store: GraphStore, reference: dict, job: str) -> None:
    want_shape, want_content = reference[job]
    assert shape(store) == want_shape
    got = content(store)
    for part, rows in want_content.items():
        assert got[part] == rows, f"{part} differs after the re-run ({len(got[part])} vs {len(rows)} rows)"


# ---- the tests --------------------------------------------------------------------------------------------------

def test_embedding_refresh_killed_mid_write_is_one_line_and_a_rerun_converges(victim, reference, configs, embedder):
    with victim.store(batch_size=GRAPH_BATCH) as store:
        store.clear()
        killer = Killer(victim.info.pid, at=2)  # after the second committed chunk batch
        with pytest.raises(GraphUnavailable) as caught:
            refresh(store, configs, embedder, on_batch=killer)
    assert killer.fired
    assert_one_clear_line(caught.value, victim, "embedding_refresh")

    restarted_and_partial(victim, "embedding_refresh", reference["embedding_refresh"][0])
    with victim.store() as store:
        rerun = refresh(store, configs, embedder)
        assert rerun.embedded == 0 and rerun.chunks_written == rerun.chunks  # every document was still pending
        assert_converged(store, reference, "embedding_refresh")
        again = refresh(store, configs, embedder)  # and that is a fixed point
        assert (again.chunks_written, again.documents_written, again.chunks_deleted) == (0, 0, 0)
        assert_converged(store, reference, "embedding_refresh")


def test_kg_update_killed_mid_write_is_one_line_and_a_rerun_converges(victim, reference, configs, embedder,
                                                                       extractor):
    with victim.store() as store:
        store.clear()
        refresh(store, configs, embedder)
        killer = Killer(victim.info.pid, at=2)
        with pytest.raises(GraphUnavailable) as caught:
            run_kg_update(store, extractor, batch_size=KG_BATCH, gcn=SMALL_GCN, progress=False, on_batch=killer)
    assert killer.fired
    assert_one_clear_line(caught.value, victim, "kg_update")
    assert "mentions batch" in str(caught.value)

    restarted_and_partial(victim, "kg_update", reference["kg_update"][0])
    with victim.store() as store:
        rerun = run_kg_update(store, extractor, batch_size=KG_BATCH, gcn=SMALL_GCN, progress=False)
        assert 0 < rerun.chunks_processed <= reference["kg_update"][0][":Chunk"] - KG_BATCH  # only the rest
        assert_converged(store, reference, "kg_update")


def pipeline_sh_line(err: BaseException) -> str:
    """The line ``scripts/pipeline.sh`` prints for a failed ``zenml pipeline run``: the last
    ``llmship.errors.<Name>: <message>`` line of the run's log, which ends with the step's traceback."""
    pattern = r"^llmship\.errors\.[A-Za-z]+: "
    assert f"grep -E '{pattern}'" in (REPO / "scripts/pipeline.sh").read_text()  # the same pattern as the script
    log = "".join(traceback.format_exception(err)).splitlines()
    return re.sub(pattern, "", [line for line in log if re.match(pattern, line)][-1])


def test_the_zenml_steps_fail_with_the_same_line(victim, reference, configs, embedder, monkeypatch):
    """What ``zenml pipeline run`` executes: the step functions (``step.entrypoint``), which connect through the
    environment like any step. The kill is triggered by the per-batch DEBUG progress record. The write_graph
    step, re-run after the restart, converges too (and fills the graph link_entities then reads)."""
    from steps.knowledge.link_entities import link_entities
    from steps.knowledge.write_graph import write_graph

    corpus_config, chunking, embed = configs
    corpus = load_corpus(corpus_config, chunking, embedder)
    with victim.store() as store:
        store.clear()
    stats = {"model_id": embedder.model_id, "embedded": 0, "hits": corpus.chunk_count}  # the reference filled it

    for name, value in victim.env().items():
        monkeypatch.setenv(name, value)
    with victim.store() as store:
        refresh_plan = plan(corpus, store)
    killer = Killer(victim.info.pid, at=2)
    with KillOnLog("llmship.knowledge.ingest.embedding_refresh", r": chunks \d+/\d+ written", killer), \
            pytest.raises(GraphUnavailable) as caught:
        write_graph.entrypoint(corpus, refresh_plan, stats, embed)
    assert killer.fired
    line = assert_one_clear_line(caught.value, victim, "embedding_refresh")
    assert pipeline_sh_line(caught.value) == line

    restarted_and_partial(victim, "embedding_refresh", reference["embedding_refresh"][0])
    with victim.store() as store:
        refresh_plan = plan(corpus, store)
    write_graph.entrypoint(corpus, refresh_plan, stats, embed)
    with victim.store() as store:
        store.set_meta("embedding_refresh_version", "v1")  # the step writes the time; the reference wrote "v1"
        assert_converged(store, reference, "embedding_refresh")

    killer = Killer(victim.info.pid, at=2)
    with KillOnLog("llmship.knowledge.kg.update", r"mentions batch \d+/\d+ committed", killer), \
            pytest.raises(GraphUnavailable) as caught:
        link_entities.entrypoint(EntityConfig(), KG_BATCH)
    assert killer.fired
    line = assert_one_clear_line(caught.value, victim, "kg_update")
    assert pipeline_sh_line(caught.value) == line

    # (re-running kg_update after this kill converges: the test above, through the same core function)
