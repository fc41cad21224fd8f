"""The Neo4j dialect's read-back of its search indexes, on rows shaped as Neo4j 5's ``SHOW INDEXES YIELD name, type,
labelsOrTypes, properties, options, state`` returns them (Cypher manual, "SHOW INDEXES"). The statements themselves
run against a real Neo4j 5 in CI's neo4j job; here ArcadeDB has no ``SHOW INDEXES``."""

from __future__ import annotations

import pytest

from llmship.knowledge.graphstore.dialects import search_index_problem
from tests.helpers.neo4j_indexes import KEYWORD, VECTOR, fulltext, vector

RANGE = {"name": "chunk_doc_id", "type": "RANGE", "labelsOrTypes": ["Chunk"], "properties": ["doc_id"],
         "state": "ONLINE", "options": {"indexProvider": "range-1.0", "indexConfig": {}}}


def problem(rows: list[dict], dims: int = 384) -> str | None:
    return search_index_problem(rows, dims, vector_name=VECTOR, keyword_name=KEYWORD)


def test_our_two_indexes_beside_others_are_fine():
    assert problem([RANGE, vector(), fulltext(), vector("person_embedding", 128, "Person")]) is None


def test_an_index_of_another_name_in_the_way_is_named_with_the_statement_that_clears_it():
    line = problem([vector("legacy_chunks", 384), fulltext()])
    assert line is not None and "\n" not in line
    assert "'legacy_chunks' already covers :Chunk(embedding)" in line and "DROP INDEX legacy_chunks" in line
    assert "'chunk_text'" in (problem([vector(), fulltext("lucene_text")]) or "")


def test_a_vector_index_of_other_dimensions_says_both_sizes():
    line = problem([vector(dims=768), fulltext()], dims=384)
    assert line is not None and "768-dimensional" in line and "makes 384" in line and f"DROP INDEX {VECTOR}" in line


def test_our_name_taken_by_another_kind_of_index():
    taken = {**RANGE, "name": KEYWORD}
    line = problem([vector(), taken])
    assert line is not None and f"the index name {KEYWORD!r} is taken by a RANGE index" in line


@pytest.mark.parametrize("rows", [[], [vector()], [fulltext()]])
def test_a_missing_index_is_a_problem_not_silence(rows):
    assert "is missing" in (problem(rows) or "")
