"""The labelled RAG question set: well formed, gold spans verbatim in the loaded corpus, enough variety."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from llmship.errors import LlmshipError
from llmship.knowledge.ingest.documents import load_documents
from llmship.paths import REPO_ROOT
from llmship.rag.eval_set import RagQuestion, load_questions

CORPUS = REPO_ROOT / "data" / "corpus" / "docs"


@pytest.fixture(scope="module")
def questions() -> list[RagQuestion]:
    return load_questions()


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return {d.id: d.text for d in load_documents(CORPUS).documents}


def test_size_and_unique_ids(questions: list[RagQuestion]) -> None:
    assert len(questions) >= 80
    assert len({q.id for q in questions}) == len(questions)


def test_gold_is_verbatim_in_loaded_document(questions: list[RagQuestion], texts: dict[str, str]) -> None:
    for q in questions:
        assert q.doc_id in texts, q.id
        assert q.gold in texts[q.doc_id], q.id
        assert 20 <= len(q.gold) <= 200, q.id
        assert q.answer.lower() in q.gold.lower(), q.id


def test_two_hop_questions(questions: list[RagQuestion], texts: dict[str, str]) -> None:
    two = [q for q in questions if q.hops == 2]
    assert len(two) >= 10
    for q in two:
        assert q.via_doc_id in texts and q.via_doc_id != q.doc_id, q.id
    assert all(q.via_doc_id is None for q in questions if q.hops == 1)


def test_variety(questions: list[RagQuestion]) -> None:
    assert len(Counter(q.kind for q in questions)) >= 8
    folders = {q.doc_id.split("/")[0] for q in questions}
    assert {"people", "companies", "towns", "rivers", "products", "festivals", "history", "recipes",
            "transport"} <= folders


def test_questions_do_not_give_the_answer_away(questions: list[RagQuestion]) -> None:
    for q in questions:
        assert q.answer.lower() not in q.question.lower(), q.id
        assert q.gold not in q.question, q.id


def _good_line() -> str:
    return json.dumps({"id": "x1", "question": "Who started Kestrel Cycles?", "answer": "Verity Esk",
                       "doc_id": "companies/kestrel-cycles.md", "gold": "Verity Esk and a partner founded it.",
                       "kind": "founder", "hops": 1})


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"id": "x2", "question": "?"}), "[1, 2]"])
def test_malformed_line_is_one_clear_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(_good_line() + "\n\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(LlmshipError) as info:
        load_questions(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{path}:3:" in message


def test_loads_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(_good_line() + "\n", encoding="utf-8")
    [q] = load_questions(path)
    assert q.kind == "founder" and q.hops == 1 and q.via_doc_id is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LlmshipError, match="cannot read question set"):
        load_questions(tmp_path / "absent.jsonl")
