"""``GraphStore``: the knowledge graph over the official neo4j Bolt driver (Neo4j 5 or embedded ArcadeDB).

Model::

    (:Document {id, hash, title, source})
    (:Chunk {id, doc_id, seq, text, hash, start_char, end_char, embedding})-[:FROM_DOCUMENT]->(:Document)
    (:Chunk)-[:NEXT_CHUNK]->(:Chunk)            consecutive by seq within a document
    (:Entity {key, name, label})<-[:MENTIONS]-(:Chunk)
    kg_update (llmship.knowledge.kg.update) adds: Chunk.kg_hash (the hash its mentions were extracted from),
    MENTIONS {count, surfaces}, Entity {aliases, mention_count, chunk_count, graph_embedding},
    (:Entity)-[:CO_OCCURS {weight}]->(:Entity)  one direction, a.key < b.key
    (:Meta {id: "meta", <key>: <value>, ...})   one node of version markers

How it writes, and why. The seed chapter this replaces built Cypher with
f-strings (``f"MERGE (d:Document {{id: '{doc_id}'}})"``) and sent one statement
per row. The first is an injection hole and a correctness bug: a title with a
quote broke the statement, and text such as ``"}) MATCH (n) DETACH DELETE n //``
became Cypher. The second is slow: one round trip and one transaction per row
(``benchmarks/graph_write_bench.py`` measures both on embedded ArcadeDB). So here:

- every value travels as a query parameter; the only names formatted into a
  statement are labels / relationship types / property names from the fixed
  allow-lists in ``llmship.knowledge.graphstore.dialects``;
- rows go in ``UNWIND $rows AS r`` batches (``batch_size``, default 1,000), each
  batch in one explicit transaction (``session.execute_write``), so a failure
  rolls the whole batch back and the driver retries transient errors;
- every node is ``MERGE``d on its constrained key, so re-running a pipeline
  converges to the same graph (``ensure_schema`` creates the constraints);
- a server that goes away mid-call (killed, restarting) is one ``GraphUnavailable``
  line once the driver's retries (``max_retry_time_s``) are spent, never a raw
  driver traceback; a pipeline function marked ``@graph_job`` names itself in
  it and says that re-running is safe (tests/reliability/test_graph_faults.py).

Server differences (DDL, search index names) live in ``dialects.py``; the queries here
are the same on both backends.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr

from llmship.errors import GraphError, GraphUnavailable
from llmship.knowledge.graphstore import dialects
from llmship.knowledge.graphstore.cypher import (
    CHUNK_EMBEDDINGS,
    CHUNKS,
    CHUNKS_WITH_EMBEDDINGS,
    DELETE_CHUNKS,
    DELETE_DOCUMENT_CHUNKS,
    DELETE_DOCUMENTS,
    DOC_IDS_OF_CHUNKS,
    LINK_NEXT,
    MOVED_FROM,
    QUERIES,
    UNLINK_NEXT,
    UPSERT_CHUNKS,
)
from llmship.knowledge.graphstore.dialects import LABEL_KEYS, REL_TYPES, Dialect

if TYPE_CHECKING:
    import numpy as np

DEFAULT_BATCH_SIZE = 1000
DEFAULT_DIMENSIONS = 384  # MiniLM (llmship.knowledge.embedder)
META_ID = "meta"

Backend = Literal["arcadedb", "neo4j"]


class GraphSettings(BaseModel):
    """Where the graph is. ``from_env()``: the embedded ArcadeDB that ``llmship graph start`` runs, unless
    ``LLMSHIP_GRAPH_BACKEND=neo4j`` or ``NEO4J_URI`` points elsewhere."""

    backend: Backend = "arcadedb"
    uri: str = "bolt://127.0.0.1:7687"
    user: str = "root"
    password: SecretStr = SecretStr("")
    database: str = "llmship"
    http_url: str | None = Field(default=None, description="ArcadeDB only: the HTTP API, for schema DDL")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=100_000)
    dimensions: int = Field(default=DEFAULT_DIMENSIONS, ge=1, le=8192)
    connect_timeout_s: float = 5.0
    max_retry_time_s: float = Field(default=15.0, ge=0, description="how long the driver retries a transaction "
                                    "on a transient failure (a server restarting); serving uses less, to fail fast")
    fail_fast_s: float = Field(default=0.0, ge=0, description="once the graph is found unreachable, every call "
                               "fails at once for this long instead of waiting out the driver's retries again "
                               "(0: off, what a pipeline wants; the retrieval service sets it: see GraphStore._guard)")

    @classmethod
    def from_env(cls, root: str | None = None, *, require_running: bool = False) -> GraphSettings:
        """``NEO4J_URI`` / ``NEO4J_USER`` / ``NEO4J_PASSWORD`` / ``NEO4J_DATABASE`` over the defaults.

        The backend is ``$LLMSHIP_GRAPH_BACKEND``, else ``neo4j`` when ``NEO4J_URI`` is set, else ``arcadedb``,
        whose defaults come from the running embedded server's state file (under ``root``, default
        ``LLMSHIP_HOME/graph``) and its password file. ``LLMSHIP_GRAPH_HTTP_URL`` points the arcadedb dialect at
        another server's HTTP API (default: the Bolt host, port 2480). ``require_running``: with the embedded
        backend and no ``NEO4J_URI``, a server that is not running is a ``GraphError`` rather than the default
        port (what a one-shot job wants: ``GraphStore.connect()`` asks for it; a long-running service may start
        before the graph does).
        """
        from llmship.knowledge.graphstore import server

        env = os.environ
        backend = env.get("LLMSHIP_GRAPH_BACKEND") or ("neo4j" if env.get("NEO4J_URI") else "arcadedb")
        if backend not in ("arcadedb", "neo4j"):
            raise GraphError(f"LLMSHIP_GRAPH_BACKEND must be arcadedb or neo4j, not {backend!r}")
        extra: dict[str, Any] = {}
        if env.get("LLMSHIP_GRAPH_BATCH_SIZE"):
            extra["batch_size"] = int(env["LLMSHIP_GRAPH_BATCH_SIZE"])
        if env.get("LLMSHIP_GRAPH_MAX_RETRY_S"):
            extra["max_retry_time_s"] = float(env["LLMSHIP_GRAPH_MAX_RETRY_S"])
        if backend == "neo4j":
            return cls(backend="neo4j", uri=env.get("NEO4J_URI", "bolt://127.0.0.1:7687"),
                       user=env.get("NEO4J_USER", "neo4j"), password=SecretStr(env.get("NEO4J_PASSWORD", "")),
                       database=env.get("NEO4J_DATABASE", "neo4j"), **extra)
        info = server.status(root) if not env.get("NEO4J_URI") else None
        if require_running and info is None and not env.get("NEO4J_URI"):
            # Without this, a stopped embedded server would send us to the default port, where another
            # checkout's server may answer (with another password).
            raise GraphError(f"the embedded graph is not running (state under {server.graph_home(root)}); "
                             "start it with `llmship graph start`, or set NEO4J_URI")
        uri = env.get("NEO4J_URI") or (info.uri if info else f"bolt://{server.DEFAULT_HOST}:{server.DEFAULT_BOLT_PORT}")
        http_url = env.get("LLMSHIP_GRAPH_HTTP_URL") or (
            info.http_url if info else f"http://{urlsplit(uri).hostname}:{server.DEFAULT_HTTP_PORT}")
        secret = env.get("NEO4J_PASSWORD") or server.password(root, create=False) or ""
        return cls(backend="arcadedb", uri=uri, user=env.get("NEO4J_USER", server.USER), password=SecretStr(secret),
                   database=env.get("NEO4J_DATABASE") or (info.database if info else server.DEFAULT_DATABASE),
                   http_url=http_url, **extra)

    @classmethod
    def for_server(cls, info, root: str | None = None, **overrides: Any) -> GraphSettings:
        """Settings for an embedded server we started (``llmship.knowledge.graphstore.server.GraphServerInfo``)."""
        from llmship.knowledge.graphstore import server

        fields: dict[str, Any] = {
            "backend": "arcadedb", "uri": info.uri, "user": info.user, "database": info.database,
            "http_url": info.http_url, "password": server.password(root or info.root, create=False) or ""}
        return cls(**(fields | overrides))


def _batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _floats(vector: Any) -> list[float] | None:
    if vector is None:
        return None
    values = vector.tolist() if hasattr(vector, "tolist") else list(vector)
    return [float(v) for v in values]


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _require(row: Mapping[str, Any], keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if row.get(k) is None]
    if missing:
        raise GraphError(f"a {what} row lacks {', '.join(missing)}: {dict(list(row.items())[:3])!r}"[:300])


class GraphStore:
    """Batched, parameterised reads and writes of the knowledge graph. Use ``GraphStore.connect(settings)``."""

    def __init__(self, driver, settings: GraphSettings, dialect: Dialect) -> None:
        self._driver = driver
        self.settings = settings
        self.dialect = dialect
        self._down: tuple[float, GraphUnavailable] | None = None  # (until when, why): see ``_guard``

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: GraphSettings | None = None, *, verify: bool = True) -> GraphStore:
        """Open a driver and prove it with ``RETURN 1`` in the database; one clear ``GraphError`` otherwise.

        ``verify=False`` skips the proof: for a server (the RAG retrieval service) that must start while the graph
        is down and answer 503 until it is back — the driver connects on each use, every failure a ``GraphError``.
        """
        import neo4j

        settings = settings or GraphSettings.from_env(require_running=True)
        where = f"{settings.uri} (database {settings.database!r})"
        try:
            driver = neo4j.GraphDatabase.driver(
                settings.uri, auth=(settings.user, settings.password.get_secret_value()),
                connection_timeout=settings.connect_timeout_s, connection_acquisition_timeout=30.0,
                max_transaction_retry_time=settings.max_retry_time_s)
        except (ValueError, neo4j.exceptions.ConfigurationError) as err:
            raise GraphError(f"bad graph URI {settings.uri!r}: {err}") from None
        if not verify:
            return cls(driver, settings, dialects.dialect_for(settings))
        try:
            with driver.session(database=settings.database) as session:
                session.run("RETURN 1 AS ok").consume()
        except neo4j.exceptions.AuthError as err:
            driver.close()
            hint = " (the embedded server keeps the password it was first started with)" \
                if settings.backend == "arcadedb" else ""
            raise GraphError(f"the graph at {where} refused user {settings.user!r}: {err.message}{hint}") from None
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as err:
            driver.close()
            hint = "; start it with `llmship graph start`" if settings.backend == "arcadedb" else ""
            raise GraphError(f"cannot reach the graph at {where}: {_one_line(err)}{hint}") from None
        return cls(driver, settings, dialects.dialect_for(settings))

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- plumbing -----------------------------------------------------------------------------------------------

    def _session(self):
        return self._driver.session(database=self.settings.database)

    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one driver call and turn its failures into one-line ``GraphError``s.

        With ``settings.fail_fast_s``, an unreachable graph opens a window in which every call raises the same
        ``GraphUnavailable`` at once (a circuit breaker); the first call after it asks the driver again. Why: a
        retrieval request makes three graph calls in turn (the version marker, the searches, the empty-graph
        check), each waiting out the driver's retries, so with the graph down every RAG request took ~6 s to
        its 503 and held a worker thread meanwhile; now the first takes one retry period and the rest answer at
        once."""
        import neo4j

        down = self._down
        if down is not None:
            until, why = down
            if time.monotonic() < until:
                raise GraphUnavailable.lost(why.where, what, why.detail, why.remedy) from None
            self._down = None
        try:
            return fn()
        except GraphError:
            raise
        except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired, OSError) as err:
            # (IncompleteCommit is a ServiceUnavailable: the commit may or may not have landed; every write here
            # is idempotent, so repeating it is right either way.)
            lost = GraphUnavailable.lost(self.settings.uri, what, _reason(err), dialects.remedy(self.settings))
            if self.settings.fail_fast_s > 0:
                self._down = (time.monotonic() + self.settings.fail_fast_s, lost)
            raise lost from None
        except neo4j.exceptions.Neo4jError as err:
            raise GraphError(f"graph {what} failed: {err.code}: {_one_line(err.message or err)}") from None
        except neo4j.exceptions.DriverError as err:
            raise GraphError(f"graph {what} failed: {_one_line(err)}") from None

    def read(self, statement: str, /, **params: Any) -> list[dict[str, Any]]:
        """Run a read-only statement (``execute_read``) and return its records as dicts."""
        def work(tx):
            return [record.data() for record in tx.run(statement, params)]

        def call():
            with self._session() as session:
                return session.execute_read(work)

        return self._guard("read", call)

    def _write_batches(self, what: str, rows: Sequence[Any],
                       work: Callable[[Any, Sequence[Any]], None]) -> int:
        """Each batch of ``rows`` in one explicit write transaction; returns the rows written."""
        def call():
            with self._session() as session:
                for batch in _batches(rows, self.settings.batch_size):
                    session.execute_write(work, batch)
            return len(rows)

        return self._guard(what, call) if rows else 0

    def write(self, query_name: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the named statement from ``QUERIES`` over ``rows`` in ``UNWIND $rows`` batches."""
        if query_name not in QUERIES:
            raise GraphError(f"unknown graph write {query_name!r}; known: {', '.join(QUERIES)}")
        query = QUERIES[query_name]
        return self._write_batches(query_name, list(rows), lambda tx, batch: tx.run(query, rows=batch).consume())

    def write_together(self, steps: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *,
                       what: str | None = None) -> int:
        """Run named ``QUERIES`` statements, in order, each over its rows, in ONE write transaction: all of
        them or none (a batch that must land whole, e.g. a chunk's mentions and its done-mark). Returns the
        rows written. Keep each step's rows to about ``batch_size``; they are not split. ``what``: the name
        errors give the transaction (default: the statement names joined by ``+``)."""
        for name, _ in steps:
            if name not in QUERIES:
                raise GraphError(f"unknown graph write {name!r}; known: {', '.join(QUERIES)}")
        todo = [(QUERIES[name], list(rows)) for name, rows in steps if rows]

        def work(tx, _batch):
            for query, rows in todo:
                tx.run(query, rows=rows).consume()

        self._write_batches(what or "+".join(name for name, _ in steps), [None] if todo else [], work)
        return sum(len(rows) for _, rows in todo)

    # ---- schema -------------------------------------------------------------------------------------------------

    def ensure_schema(self, dimensions: int | None = None) -> None:
        """Constraints (Document.id, Chunk.id, Entity.key, Meta.id), the Chunk.doc_id index, the vector index
        on Chunk.embedding and the full-text index on Chunk.text. Idempotent."""
        def run_cypher(statement: str) -> list[dict[str, Any]]:
            with self._session() as session:
                return [record.data() for record in session.run(statement)]

        self._guard("schema", lambda: self.dialect.ensure_schema(run_cypher, dimensions or self.settings.dimensions))

    # ---- writes -------------------------------------------------------------------------------------------------

    def upsert_documents(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Rows: ``id``, ``hash`` (required), ``title``, ``source``."""
        clean = []
        for row in rows:
            _require(row, ("id", "hash"), "document")
            clean.append({"id": str(row["id"]), "hash": str(row["hash"]), "title": row.get("title"),
                          "source": row.get("source")})
        return self.write("upsert_documents", clean)

    def upsert_chunks(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Rows: ``id``, ``doc_id``, ``seq``, ``text``, ``hash`` (required), ``start_char``/``end_char`` (the span
        in the document, optional), ``embedding`` (list/array of floats;
        omitted or None keeps the stored one). Links FROM_DOCUMENT (creating a bare Document if needed) and
        rebuilds NEXT_CHUNK for the touched documents, in the same transaction as each batch."""
        clean = []
        for row in rows:
            _require(row, ("id", "doc_id", "seq", "text", "hash"), "chunk")
            clean.append({"id": str(row["id"]), "doc_id": str(row["doc_id"]), "seq": int(row["seq"]),
                          "text": str(row["text"]), "hash": str(row["hash"]),
                          "start_char": _int_or_none(row.get("start_char")),
                          "end_char": _int_or_none(row.get("end_char")),
                          "embedding": _floats(row.get("embedding"))})

        def work(tx, batch):
            slim = [{"id": r["id"], "doc_id": r["doc_id"]} for r in batch]  # (embeddings are the bulk of a batch)
            moved_from = {rec["did"] for rec in tx.run(MOVED_FROM, rows=slim)}  # chains that lose a chunk
            tx.run(UPSERT_CHUNKS, rows=batch).consume()
            _relink(tx, sorted(moved_from | {r["doc_id"] for r in batch}))

        return self._write_batches("upsert_chunks", clean, work)

    def set_embeddings(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Rows: ``id``, ``embedding``: set the vectors of existing chunks (unknown ids are skipped)."""
        clean = [{"id": str(r["id"]), "embedding": _floats(r["embedding"])} for r in rows]
        return self.write("set_embeddings", clean)

    def delete_chunks(self, ids: Iterable[str]) -> int:
        """Delete chunks and their relationships; re-chains NEXT_CHUNK in their documents."""
        id_list = [str(i) for i in ids]

        def work(tx, batch):
            doc_ids = [rec["did"] for rec in tx.run(DOC_IDS_OF_CHUNKS, ids=batch)]
            tx.run(DELETE_CHUNKS, ids=batch).consume()
            _relink(tx, doc_ids)

        return self._write_batches("delete_chunks", id_list, work)

    def delete_documents(self, ids: Iterable[str]) -> int:
        """Delete documents with all their chunks (and every relationship of both)."""
        id_list = [str(i) for i in ids]

        def work(tx, batch):
            tx.run(DELETE_DOCUMENT_CHUNKS, ids=batch).consume()
            tx.run(DELETE_DOCUMENTS, ids=batch).consume()

        return self._write_batches("delete_documents", id_list, work)

    def set_meta(self, key: str, value: Any) -> None:
        """Store one marker on the single ``Meta`` node (the key is a map key in a parameter, not Cypher)."""
        if not isinstance(key, str) or not key or key == "id":
            raise GraphError(f"bad meta key {key!r}")

        def work(tx, _batch):
            tx.run("MERGE (m:Meta {id: $id}) SET m += $props", id=META_ID, props={key: value}).consume()

        self._write_batches("set_meta", [key], work)

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.read("MATCH (m:Meta {id: $id}) RETURN m[$key] AS value", id=META_ID, key=key)
        value = rows[0]["value"] if rows else None
        return default if value is None else value

    def clear(self, batch: int = 5000) -> None:
        """Delete every node and relationship (tests only; the schema stays)."""
        def work(tx, _batch):
            return tx.run("MATCH (n) WITH n LIMIT $n DETACH DELETE n RETURN count(*) AS deleted", n=batch).single()

        def call():
            with self._session() as session:
                while session.execute_write(work, None)["deleted"]:
                    pass

        self._guard("clear", call)

    # ---- reads --------------------------------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, str]:
        return {r["id"]: r["hash"] for r in self.read("MATCH (d:Document) RETURN d.id AS id, d.hash AS hash")}

    def chunk_hashes(self, doc_id: str | None = None) -> dict[str, str]:
        if doc_id is None:
            rows = self.read("MATCH (c:Chunk) RETURN c.id AS id, c.hash AS hash")
        else:
            rows = self.read("MATCH (c:Chunk {doc_id: $doc_id}) RETURN c.id AS id, c.hash AS hash", doc_id=doc_id)
        return {r["id"]: r["hash"] for r in rows}

    def chunks(self, ids: Sequence[str], embeddings: bool | Iterable[str] = True) -> list[dict[str, Any]]:
        """Chunks by id (in the order asked, unknown ids skipped). ``embeddings``: True for every chunk's, False
        for none (``embedding`` None), or the ids that need theirs — reading 384 floats per chunk over Bolt is
        most of this call's cost, so a caller asks only for what it will use."""
        every = embeddings is True  # one read with the vectors, else a second read for the few that need them
        rows = self.read(CHUNKS_WITH_EMBEDDINGS if every else CHUNKS, ids=list(ids))
        by_id = {r["id"]: {"embedding": None} | r for r in rows}
        wanted = [] if isinstance(embeddings, bool) else [i for i in dict.fromkeys(embeddings) if i in by_id]
        if wanted:
            for r in self.read(CHUNK_EMBEDDINGS, ids=wanted):
                if r["id"] in by_id:
                    by_id[r["id"]]["embedding"] = r["embedding"]
        return [by_id[i] for i in ids if i in by_id]

    def counts(self) -> dict[str, int]:
        """Nodes per label and relationships per type, for every name in the schema allow-lists."""
        def work(tx):
            out = {}
            for label in LABEL_KEYS:  # names from the allow-list, not from data
                out[label] = tx.run(f"MATCH (n:{label}) RETURN count(n) AS c").single()["c"]
            for rel in REL_TYPES:
                out[rel] = tx.run(f"MATCH ()-[r:{rel}]->() RETURN count(r) AS c").single()["c"]
            return out

        def call():
            with self._session() as session:
                return session.execute_read(work)

        return self._guard("counts", call)

    def vector_search(self, embedding: Sequence[float] | np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` chunks nearest to ``embedding`` (cosine), best first, as ``(chunk_id, score)``;
        score = (1 + cos) / 2 on both backends (server-side index; see dialects.py)."""
        if top_k <= 0:
            return []
        rows = self.read(self.dialect.vector_query, index=self.dialect.vector_index, k=int(top_k),
                         embedding=_floats(embedding))
        return [(r["id"], float(r["score"])) for r in rows][:top_k]

    def keyword_search(self, text: str, top_k: int = 5) -> list[tuple[str, float]]:
        """Chunks whose text matches words of ``text`` (full-text index, BM25), best first."""
        query = dialects.keyword_terms(text)
        if not query or top_k <= 0:
            return []
        rows = self.read(self.dialect.keyword_query, index=self.dialect.keyword_index, query=query, k=int(top_k))
        return [(r["id"], float(r["score"])) for r in rows][:top_k]


def _relink(tx, doc_ids: Sequence[str]) -> None:
    if doc_ids:
        tx.run(UNLINK_NEXT, doc_ids=list(doc_ids)).consume()
        tx.run(LINK_NEXT, doc_ids=list(doc_ids)).consume()


def _one_line(err: object) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


_REASON = re.compile(r"\(reason (.+)\)\s*$")
_OS_ERROR = re.compile(r"(\w+Error)\(\d+, '([^']+)'\)")


def _reason(err: BaseException) -> str:
    """The short why of a lost connection: ``ServiceUnavailable: [Errno 111] Connection refused`` rather than
    the driver's two addresses per line."""
    text = _one_line(err)
    found = _REASON.search(text)
    if found:
        text = found.group(1)
    elif found := _OS_ERROR.search(text):
        text = f"{found.group(1)}: {found.group(2)}"
    return f"{type(err).__name__}: {text}"


P = ParamSpec("P")
R = TypeVar("R")


def graph_job(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a pipeline function (``embedding_refresh``, ``kg_update``): a graph that goes away while it runs
    surfaces as ONE line naming the pipeline and saying what to do — ``GraphUnavailable.in_job``: start the
    graph again and re-run; the run is safe to repeat (every write is an idempotent MERGE and each pipeline
    writes its done-marks last, see embedding_refresh.py and kg.py). The same error object is re-raised, so a
    ZenML step that calls the function fails with exactly this line (``scripts/pipeline.sh`` prints it)."""
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except GraphUnavailable as err:
                err.in_job(name)
                raise

        return run

    return decorate
