"""Cypher injection through documents and queries: stored and returned literally, nothing executed, nothing lost.

Documents whose file names (→ document and chunk ids), titles, text and entity-like names carry Cypher
fragments (``'}) MATCH (n) DETACH DELETE n //``, ``" OR 1=1 //``, backticks, ``$param``, ``{}``, ``{id: $rows}``)
and non-ASCII text go through embedding_refresh and kg_update on a real ArcadeDB; then the retriever is asked the
fragments themselves in every mode. Every graph statement in the core is a fixed string with parameters, so:

- the node/relationship counts are exactly what the corpus implies (no ``DETACH DELETE`` ran), and re-running
  both pipelines changes nothing;
- ids, titles, chunk text and entity names/surfaces read back through ``GraphStore`` equal the originals;
- retrieval with an injection string as the query answers without error and returns the literal text.

The last test reads the package source: the only Cypher (or ArcadeDB SQL) built by formatting is schema DDL and
counting over the fixed label / relationship-type allow-lists in ``llmship.knowledge.graphstore.dialects``.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from llmship.knowledge.ingest.embedding_refresh import (
    ChunkingConfig,
    CorpusConfig,
    EmbedConfig,
    load_corpus,
    run_embedding_refresh,
)
from llmship.knowledge.kg.update import run_kg_update
from llmship.knowledge.retrieval.retriever import Retriever
from tests.conftest import REPO

DELETE_ALL = "'}) MATCH (n) DETACH DELETE n //"
OR_TRUE = '" OR 1=1 //'
BACKTICKS = "`Chunk` ; DROP CONSTRAINT chunk_id_unique"
PARAMS = "$param {} {id: $rows}"
FIRM = "O'Brien & Sons \"Holdings\" Ltd"  # spaCy reads it as one ORG, quotes and all
DROP_TABLE = "Robert'); DROP TABLE Students;--"

#: file name → contents. The names become document ids and chunk ids (``<doc id>#<seq>``).
DOCS = {
    "o'brien \"{}\" $param #1.md": f"# {DELETE_ALL}\n\nMaura O'Brien founded {FIRM} in Dún Laoghaire in 1990. "
                                   f"Her ledger note read {DELETE_ALL} and nothing else happened.\n",
    "or-true.md": f"# {OR_TRUE}\n\n{DROP_TABLE} met Zoë Ångström at the Café Ångström in São Paulo. The old login "
                  f"form accepted {OR_TRUE} as a password.\n",
    "`ticks` {x}.md": f"# {BACKTICKS}\n\nKell & Rowe printed {PARAMS} on every invoice from Glasgow. A backtick "
                      "`Entity` sits in the margin, beside 中文 and 😀.\n",
    f"{DELETE_ALL.replace('/', '')}.txt": f"{DELETE_ALL} was typed into the search box of the Pellingford archive "
                                          "by Tobias Ruddlesworth.\n",
    "lighthouse.md": "# Brackenholm Light\n\nThe Brackenholm Light stands on Skerry Point. Its keeper, Oswin "
                     "Thackeray, lit the lamp with whale oil until 1921.\n",
    "cheese.md": "# Quillbury blue\n\nQuillbury blue is a sheep's milk cheese ripened for nine weeks in limestone "
                 "caves near Dunmarrow.\n",
}
#: query → the document whose chunk must come back (with its literal text).
QUERIES = {
    DELETE_ALL: "o'brien \"{}\" $param #1.md",
    OR_TRUE: "or-true.md",
    BACKTICKS: "`ticks` {x}.md",
    PARAMS: "`ticks` {x}.md",
    FIRM: "o'brien \"{}\" $param #1.md",
}
MODES = ("dense", "keyword", "hybrid", "graph")


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("injection-docs")
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    cache = tmp_path_factory.mktemp("injection-cache") / "embeddings.sqlite"
    return CorpusConfig(folder=str(folder)), ChunkingConfig(), EmbedConfig(cache_path=str(cache))


@pytest.fixture()
def loaded(graph, configs, embedder, extractor):
    """The corpus through both pipelines: (refresh report, kg report, the corpus as computed from the files)."""
    refresh = run_embedding_refresh(*configs, graph=graph, embedder=embedder)
    kg = run_kg_update(graph, extractor, embed=False, progress=False)
    return refresh, kg, load_corpus(configs[0], configs[1], embedder)


def expected_counts(refresh, kg) -> dict[str, int]:
    return {"Document": len(DOCS), "Chunk": refresh.chunks, "Entity": kg.entities, "Meta": 1,
            "FROM_DOCUMENT": refresh.chunks, "NEXT_CHUNK": refresh.chunks - len(DOCS),
            "MENTIONS": kg.mention_links, "CO_OCCURS": kg.co_occurs}


def test_injection_strings_are_stored_and_read_back_literally(graph, loaded, configs, embedder, extractor):
    refresh, kg, corpus = loaded
    assert refresh.documents == len(DOCS) and refresh.skipped_files == 0
    assert kg.entities > 5 and kg.mention_links > 5
    counts = expected_counts(refresh, kg)
    assert graph.counts() == counts  # nothing deleted, nothing extra

    # documents: ids from the file names, titles from the headings, exactly
    stored_docs = graph.read("MATCH (d:Document) RETURN d.id AS id, d.title AS title, d.hash AS hash")
    assert sorted((d["id"], d["title"], d["hash"]) for d in stored_docs) == \
        sorted((d.id, d.title, d.hash) for d in corpus.documents)
    titles = {d["title"] for d in stored_docs}
    assert {DELETE_ALL, OR_TRUE, BACKTICKS} <= titles

    # chunks: ids and text through GraphStore.chunks equal what chunking computed from the files
    original = {c.id: c for cs in corpus.chunks.values() for c in cs}
    back = {row["id"]: row for row in graph.chunks(sorted(original), embeddings=False)}
    assert set(back) == set(original)
    for cid, chunk in original.items():
        assert (back[cid]["text"], back[cid]["doc_id"], back[cid]["seq"]) == (chunk.text, chunk.doc_id, chunk.seq)
    texts = "\n".join(c.text for c in original.values())
    for fragment in (DELETE_ALL, OR_TRUE, BACKTICKS, PARAMS, FIRM, DROP_TABLE, "中文 and 😀"):
        assert fragment in texts

    # entities: names with quotes were MERGEd on their keys; every mention's surface is literally in its chunk
    entities = graph.read("MATCH (e:Entity) RETURN e.key AS key, e.name AS name")
    assert any("'" in e["name"] or '"' in e["name"] for e in entities)
    mentions = graph.read("MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity) RETURN c.text AS text, m.surfaces AS surfaces, "
                          "e.key AS key")
    assert len(mentions) == counts["MENTIONS"]
    for m in mentions:
        assert all(surface in m["text"] for surface in m["surfaces"]), m
    by_key = {e["key"]: e["name"] for e in entities}
    assert by_key.get("ORG:o'brien & sons \"holdings") == FIRM

    # both pipelines again: nothing to do, nothing changes
    again = run_embedding_refresh(*configs, graph=graph, embedder=embedder)
    assert (again.chunks_written, again.documents_written, again.chunks_deleted, again.documents_deleted) == \
        (0, 0, 0, 0)
    assert run_kg_update(graph, extractor, embed=False, progress=False).chunks_processed == 0
    assert graph.counts() == counts


def test_injection_strings_as_queries_return_the_literal_text(graph, loaded, embedder, extractor):
    corpus = loaded[2]
    counts = graph.counts()
    original = {c.id: c.text for cs in corpus.chunks.values() for c in cs}
    retriever = Retriever(graph, embedder, extractor, reranker=None)
    found_in_top: dict[tuple[str, str], int] = {}
    for query, doc_id in QUERIES.items():
        for mode in MODES:
            hits = asyncio.run(retriever.retrieve(query, top_k=3, mode=mode))
            assert hits, (query, mode)
            for hit in hits:  # whatever came back is the stored text, byte for byte
                assert hit.text == original[hit.chunk_id]
            ranks = [h.rank for h in hits if h.doc_id == doc_id]
            if ranks:
                found_in_top[(query, mode)] = ranks[0]
                hit = next(h for h in hits if h.doc_id == doc_id)
                assert hit.title == next(d.title for d in corpus.documents if d.id == doc_id)
    # every query finds its document in the top 3 by keyword and hybrid (the words are there, as words);
    # dense and graph rank by meaning and by entities, so only where the query has them
    for query in QUERIES:
        assert (query, "keyword") in found_in_top and (query, "hybrid") in found_in_top, query
    assert found_in_top[(FIRM, "graph")] == 1  # the quoted company name is an entity, found by its name
    assert graph.counts() == counts  # the queries changed nothing


def test_a_query_of_only_cypher_syntax_is_answered(graph, loaded, embedder):
    retriever = Retriever(graph, embedder, reranker=None)
    for query in ("'})", '"', "`", "{}", "$", "//", "\\'", "MATCH (n) DETACH DELETE n"):
        for mode in ("dense", "keyword", "hybrid"):
            hits = asyncio.run(retriever.retrieve(query, top_k=2, mode=mode))
            assert isinstance(hits, list) and len(hits) <= 2
    assert graph.counts()["Chunk"] == loaded[0].chunks


# ---- the source: where Cypher is built by formatting ------------------------------------------------------------

CYPHER_WORDS = ("MATCH ", "MERGE ", "CREATE ", "UNWIND ", "CALL ", "DELETE ", "RETURN ", " SET ", "WHERE ",
                "DROP ", "REMOVE ")
#: (file, function): the only places that may format names into Cypher / ArcadeDB SQL, and what they format —
#: labels, relationship types, property names and index names from ``dialects.LABEL_KEYS`` / ``REL_TYPES`` /
#: ``PLAIN_INDEXES`` (checked by ``dialects._allowed``) and a dimension checked to be an int (``_check_dims``).
ALLOWED = {
    ("llmship/knowledge/graphstore/dialects.py", "Dialect.constraint_ddl"),
    ("llmship/knowledge/graphstore/dialects.py", "Dialect.index_ddl"),
    ("llmship/knowledge/graphstore/dialects.py", "Neo4jDialect.ensure_schema"),
    ("llmship/knowledge/graphstore/dialects.py", "ArcadeDialect.ensure_schema"),
    ("llmship/knowledge/graphstore/graph.py", "GraphStore.counts.work"),
    # not run: the one-line error an operator reads, naming the DROP INDEX that clears a clashing index
    ("llmship/knowledge/graphstore/dialects.py", "search_index_problem"),
    # not Cypher: SQLite, and what it formats is only the ``?`` placeholders of an IN list (values are bound)
    ("llmship/knowledge/cache.py", "EmbeddingCache.get_many"),
}


def _formatted_queries(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of every f-string, ``.format`` or ``%`` over text that reads like Cypher."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []

    def cypher(text: str) -> bool:
        return any(word in f" {text} " for word in CYPHER_WORDS)

    def visit(node: ast.AST, scope: list[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = [*scope, node.name]
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if cypher(text) and any(isinstance(v, ast.FormattedValue) for v in node.values):
                found.append((".".join(scope), node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
                and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str) \
                and cypher(node.func.value.value):
            found.append((".".join(scope), node.lineno))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            parts = (node.left, node.right)
            consts = [p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)]
            if any(cypher(c) for c in consts) and not all(isinstance(p, ast.Constant) for p in parts):
                found.append((".".join(scope), node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, [])
    return sorted(set(found), key=lambda f: (f[1], f[0]))


def test_no_cypher_is_formatted_from_data_in_the_package():
    package = REPO / "llmship"
    formatted = {(path.relative_to(REPO).as_posix(), where): line
                 for path in sorted(package.rglob("*.py")) for where, line in _formatted_queries(path)}
    assert set(formatted) <= ALLOWED, {k: v for k, v in formatted.items() if k not in ALLOWED}
    assert ("llmship/knowledge/graphstore/graph.py", "GraphStore.counts.work") in formatted  # the scan does see them


def test_the_source_scan_catches_the_seed_chapters_mistakes(tmp_path):
    seed = tmp_path / "seed.py"
    seed.write_text(
        "def upsert(tx, doc_id, title):\n"
        "    tx.run(f\"MERGE (d:Document {{id: '{doc_id}'}})\")\n"
        "    tx.run(\"MATCH (d:Document) WHERE d.title = '\" + title + \"' RETURN d\")\n"
        "    tx.run(\"MATCH (d:Document {{id: '{}'}}) DETACH DELETE d\".format(doc_id))\n"
        "    tx.run(\"MATCH (d:Document) WHERE d.id = '%s' RETURN d\" % doc_id)\n"
        "    tx.run(\"MATCH (d:Document {id: $id}) RETURN d\", id=doc_id)\n")
    assert _formatted_queries(seed) == [("upsert", 2), ("upsert", 3), ("upsert", 4), ("upsert", 5)]
