"""Where Neo4j 5 and ArcadeDB (over its Bolt plugin) differ — and nowhere else.

Everything the ``GraphStore`` writes and reads is the same parameterised Cypher on
both servers; only schema DDL and the names of the search indexes differ:

==================  ===========================================  =============================================
                    Neo4j 5                                      ArcadeDB 26.10 (Bolt plugin)
==================  ===========================================  =============================================
unique key          ``CREATE CONSTRAINT … IF NOT EXISTS FOR (n:L)  the same Cypher (becomes a unique LSM index)
                    REQUIRE n.k IS UNIQUE``
plain index         ``CREATE INDEX … IF NOT EXISTS FOR … ON …``    the same Cypher
vector index        ``CREATE VECTOR INDEX … OPTIONS               no Cypher DDL ("Only standard, RANGE and TEXT
                    {indexConfig: {…}}``                          index types are supported"): SQL over the
                                                                  HTTP API, ``CREATE INDEX … ON Chunk
                                                                  (embedding) LSM_VECTOR METADATA {…}``
full-text index     ``CREATE FULLTEXT INDEX … ON EACH [c.text]``  no Cypher DDL: SQL ``… ON Chunk (text)
                                                                  FULL_TEXT`` over HTTP
vector query        ``db.index.vector.queryNodes('chunk_embedding'  the same procedure (ArcadeDB implements it
                    , k, $v)``                                     over its LSM/JVector HNSW index), index
                                                                  named ``'Chunk[embedding]'``
keyword query       ``db.index.fulltext.queryNodes('chunk_text',    the same procedure (Lucene BM25), index
                    $q)``                                          named ``'Chunk[text]'``
==================  ===========================================  =============================================

So both vector and keyword search run **server-side** on both backends (measured
on arcadedb-embedded 26.10.2: ``db.index.vector.queryNodes`` returns the same
``(1 + cos) / 2`` score as Neo4j, deleted and rolled-back nodes never show up,
and the full-text procedure ranks by BM25). DESIGN.md's earlier note that
ArcadeDB "lacks" these procedures holds only for their DDL: the Bolt endpoint
runs Cypher only (``SELECT`` is a syntax error there), so the ArcadeDB dialect
sends its handful of schema statements to ``POST /api/v1/command/<db>`` with
``{"language": "sql"}``. ArcadeDB also needs the vertex type and a typed
property before it indexes one, so the dialect declares ``Chunk.embedding``
as ``ARRAY_OF_FLOATS`` (stored as float32: a 384-d vector round-trips to
float32 precision, ~1e-7 relative; Neo4j keeps float64) and ``Chunk.text`` as
``STRING``.

Both full-text procedures parse Lucene query syntax, where a stray quote or
colon in user text is a syntax error and ``AND``/``OR``/``*`` change the
meaning; ``keyword_terms`` therefore reduces the user's text to plain word terms
(OR-ed, which is Lucene's default) before it is passed — as a parameter.

Labels, relationship types and property names in DDL come only from the fixed
allow-lists below, never from data; dimensions are checked to be a positive int.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from llmship.errors import GraphError, GraphUnavailable

if TYPE_CHECKING:
    from llmship.knowledge.graphstore.graph import GraphSettings

#: Every label the store writes, with its unique key (a constraint on each).
LABEL_KEYS: dict[str, str] = {"Document": "id", "Chunk": "id", "Entity": "key", "Meta": "id"}
#: Every relationship type the store writes.
REL_TYPES: tuple[str, ...] = ("FROM_DOCUMENT", "NEXT_CHUNK", "MENTIONS", "CO_OCCURS")
#: Non-unique lookups that the writes rely on (chunks of a document).
PLAIN_INDEXES: tuple[tuple[str, str], ...] = (("Chunk", "doc_id"),)

VECTOR_QUERY = ("CALL db.index.vector.queryNodes($index, $k, $embedding) YIELD node, score "
                "RETURN node.id AS id, score")
KEYWORD_QUERY = ("CALL db.index.fulltext.queryNodes($index, $query) YIELD node, score "
                 "RETURN node.id AS id, score ORDER BY score DESC LIMIT $k")


def keyword_terms(text: str) -> str:
    """User text → a Lucene query of plain, lower-cased word terms ('' when there are none)."""
    return " ".join(dict.fromkeys(t.lower() for t in re.findall(r"\w+", text)))


def remedy(settings: GraphSettings) -> str:
    """What brings a graph that went away back (the end of a ``GraphUnavailable`` line)."""
    if settings.backend == "arcadedb":
        return "start it again (`llmship graph start`)"
    return "bring the Neo4j server back"


def _check_dims(dimensions: int) -> int:
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 0 < dimensions <= 8192:
        raise GraphError(f"embedding dimensions must be an int in 1..8192, got {dimensions!r}")
    return dimensions


def _allowed(label: str, prop: str) -> None:
    if label not in LABEL_KEYS or not prop.isidentifier():
        raise GraphError(f"{label}.{prop} is not in the graph schema allow-list")


RunCypher = Callable[[str], list[dict[str, Any]]]

#: How long ``ensure_schema`` waits for Neo4j to bring new indexes online (a large graph populates them first).
INDEX_ONLINE_TIMEOUT_S = 300


class Dialect(ABC):
    name: ClassVar[str]
    vector_index: ClassVar[str]  # the name passed to db.index.vector.queryNodes
    keyword_index: ClassVar[str]  # the name passed to db.index.fulltext.queryNodes
    vector_query: ClassVar[str] = VECTOR_QUERY
    keyword_query: ClassVar[str] = KEYWORD_QUERY

    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings

    @staticmethod
    def constraint_ddl(label: str, key: str) -> str:
        _allowed(label, key)
        return (f"CREATE CONSTRAINT {label.lower()}_{key}_unique IF NOT EXISTS "
                f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE")

    @staticmethod
    def index_ddl(label: str, prop: str) -> str:
        _allowed(label, prop)
        return f"CREATE INDEX {label.lower()}_{prop} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})"

    @abstractmethod
    def ensure_schema(self, run_cypher: RunCypher, dimensions: int) -> None:
        """Constraints, plain indexes, the vector index on ``Chunk.embedding`` and the full-text one on
        ``Chunk.text``; idempotent. ``run_cypher`` runs one statement over Bolt and returns its rows."""


class Neo4jDialect(Dialect):
    """Neo4j 5: everything, DDL included, is Cypher over Bolt."""

    name = "neo4j"
    vector_index = "chunk_embedding"
    keyword_index = "chunk_text"

    def ensure_schema(self, run_cypher: RunCypher, dimensions: int) -> None:
        """``IF NOT EXISTS`` makes Neo4j do nothing, silently, when an index of the same name or on the same
        label and property is already there, whatever its name or dimensions. Searches then fail later on a name
        that does not exist or on a vector of the wrong size. So the indexes are read back (``SHOW INDEXES``) and
        anything in the way is one line here; then the new indexes are waited for until they are online."""
        dims = _check_dims(dimensions)
        for label, key in LABEL_KEYS.items():
            run_cypher(self.constraint_ddl(label, key))
        for label, prop in PLAIN_INDEXES:
            run_cypher(self.index_ddl(label, prop))
        run_cypher(f"CREATE VECTOR INDEX {self.vector_index} IF NOT EXISTS FOR (c:Chunk) ON (c.embedding) "
                   f"OPTIONS {{indexConfig: {{`vector.dimensions`: {dims}, "
                   f"`vector.similarity_function`: 'cosine'}}}}")
        run_cypher(f"CREATE FULLTEXT INDEX {self.keyword_index} IF NOT EXISTS FOR (c:Chunk) ON EACH [c.text]")
        rows = run_cypher("SHOW INDEXES YIELD name, type, labelsOrTypes, properties, options, state")
        problem = search_index_problem(rows, dims, vector_name=self.vector_index, keyword_name=self.keyword_index)
        if problem:
            raise GraphError(f"{problem} ({self.settings.uri}, database {self.settings.database!r})")
        run_cypher(f"CALL db.awaitIndexes({INDEX_ONLINE_TIMEOUT_S})")


class ArcadeDialect(Dialect):
    """ArcadeDB over its Bolt plugin: Cypher for data and unique keys, ArcadeDB SQL over HTTP for the
    vertex types, typed properties, the LSM_VECTOR index and the FULL_TEXT index (see the module docstring).
    Search itself is server-side through the Neo4j-compatible procedures."""

    name = "arcadedb"
    vector_index = "Chunk[embedding]"
    keyword_index = "Chunk[text]"

    def sql(self, command: str) -> list[dict]:
        """Run one ArcadeDB SQL command through the HTTP API (schema only; never with user data)."""
        import httpx

        s = self.settings
        if not s.http_url:
            raise GraphError("the arcadedb backend needs the server's HTTP URL for schema commands; "
                             "set LLMSHIP_GRAPH_HTTP_URL")
        url = f"{s.http_url.rstrip('/')}/api/v1/command/{quote(s.database, safe='')}"
        try:
            resp = httpx.post(url, json={"language": "sql", "command": command},
                              auth=(s.user, s.password.get_secret_value()), timeout=120)
        except httpx.TransportError as err:  # refused, reset, disconnected: the server is gone
            raise GraphUnavailable.lost(s.uri, "schema", f"HTTP API {s.http_url}: {type(err).__name__}: {err}",
                                        remedy(s)) from None
        except httpx.HTTPError as err:
            raise GraphError(f"cannot reach ArcadeDB's HTTP API at {s.http_url}: {err}") from None
        if resp.status_code != 200:
            try:
                body = resp.json()
                detail = body.get("detail") or body.get("error") or resp.text
            except ValueError:
                detail = resp.text
            raise GraphError(f"ArcadeDB refused {command.split(' ON ')[0]!r} ({resp.status_code}): {detail[:300]}")
        return resp.json().get("result", [])

    def ensure_schema(self, run_cypher: RunCypher, dimensions: int) -> None:
        dims = _check_dims(dimensions)
        for label in LABEL_KEYS:  # vertex types first: a Cypher constraint alone would not make one
            self.sql(f"CREATE VERTEX TYPE {label} IF NOT EXISTS")
        for rel in REL_TYPES:
            self.sql(f"CREATE EDGE TYPE {rel} IF NOT EXISTS")
        for label, key in LABEL_KEYS.items():
            run_cypher(self.constraint_ddl(label, key))
        for label, prop in PLAIN_INDEXES:
            run_cypher(self.index_ddl(label, prop))
        self.sql("CREATE PROPERTY Chunk.embedding IF NOT EXISTS ARRAY_OF_FLOATS")
        self.sql("CREATE PROPERTY Chunk.text IF NOT EXISTS STRING")
        self.sql(f'CREATE INDEX IF NOT EXISTS ON Chunk (embedding) LSM_VECTOR '
                 f'METADATA {{"dimensions": {dims}, "similarity": "COSINE"}}')
        self.sql("CREATE INDEX IF NOT EXISTS ON Chunk (text) FULL_TEXT")


def search_index_problem(rows: Iterable[Mapping[str, Any]], dimensions: int, *, vector_name: str,
                         keyword_name: str) -> str | None:
    """What stands in the way of the two search indexes, from Neo4j's ``SHOW INDEXES`` rows; None when both are
    there under their names (the vector one with ``dimensions``). One line, with the statement that clears it."""
    rows = list(rows)

    def on(kind: str, prop: str) -> list[Mapping[str, Any]]:
        return [r for r in rows if str(r.get("type", "")).upper() == kind
                and list(r.get("labelsOrTypes") or []) == ["Chunk"] and list(r.get("properties") or []) == [prop]]

    for kind, prop, name in (("VECTOR", "embedding", vector_name), ("FULLTEXT", "text", keyword_name)):
        found = on(kind, prop)
        mine = [r for r in found if r.get("name") == name]
        if not mine:
            others = ", ".join(repr(r.get("name")) for r in found)
            if others:
                return (f"a {kind.lower()} index named {others} already covers :Chunk({prop}), so {name!r} was not "
                        f"created; drop it (DROP INDEX {found[0].get('name')}) or rename it to {name!r}")
            taken = [r for r in rows if r.get("name") == name]
            if taken:
                what = f"{taken[0].get('type')} index on {taken[0].get('labelsOrTypes')}{taken[0].get('properties')}"
                return f"the index name {name!r} is taken by a {what}; drop it (DROP INDEX {name})"
            return f"the {kind.lower()} index {name!r} on :Chunk({prop}) is missing after CREATE ... IF NOT EXISTS"
        if kind == "VECTOR":
            config = (mine[0].get("options") or {}).get("indexConfig") or {}
            have = config.get("vector.dimensions")
            if have is not None and int(have) != dimensions:
                return (f"the vector index {name!r} holds {int(have)}-dimensional vectors, but this embedder makes "
                        f"{dimensions}; drop it (DROP INDEX {name}) and run embedding_refresh again to re-embed")
    return None


DIALECTS: dict[str, type[Dialect]] = {"neo4j": Neo4jDialect, "arcadedb": ArcadeDialect}


def dialect_for(settings: GraphSettings) -> Dialect:
    return DIALECTS[settings.backend](settings)
