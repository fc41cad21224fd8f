"""``llmship.rag.beir``: a BEIR folder the test writes, read as the evaluation reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmship.rag.beir import BeirError, collection_name, load_beir, read_qrels


def _write(folder: Path, *, header: bool = True, qrels: str | None = None) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": "7912", "title": "", "text": "ID elements are short interspersed elements."},
              {"_id": 42, "title": "Anemia  risk", "text": "A high microerythrocyte count raises vulnerability."},
              {"_id": "empty", "title": "", "text": "  "}]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n\n")
    queries = [{"_id": "3", "text": "What are ID elements?"}, {"_id": "5", "text": "unjudged query"},
               {"_id": "9", "text": "anemia and microerythrocytes"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries))
    body = qrels if qrels is not None else "3\t7912\t1\n9\t42\t2\n9\t7912\t0\n"
    (folder / "qrels" / "test.tsv").write_text(("query-id\tcorpus-id\tscore\n" if header else "") + body)
    return folder


@pytest.mark.parametrize("header", [True, False])
def test_ids_are_kept_and_only_judged_queries_count(tmp_path, header):
    ds = load_beir(_write(tmp_path / "SciFact Dev", header=header))
    assert ds.collection == "beir-scifact-dev"
    assert [d.id for d in ds.documents] == ["beir-scifact-dev/7912", "beir-scifact-dev/42"]  # empty text dropped
    assert [ds.corpus_id(d.id) for d in ds.documents] == ["7912", "42"]
    assert ds.queries == {"3": "What are ID elements?", "9": "anemia and microerythrocytes"}
    assert ds.qrels == {"3": {"7912": 1}, "9": {"42": 2, "7912": 0}}
    titled = ds.documents[1]
    assert titled.title == "Anemia risk" and titled.text.startswith("Anemia risk\n\nA high")


def test_trec_style_four_column_qrels(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("3\t0\t7912\t1\n")
    assert read_qrels(path) == {"3": {"7912": 1}}


@pytest.mark.parametrize(("remove", "message"), [
    ("corpus.jsonl", "no corpus.jsonl"),
    ("queries.jsonl", "no queries.jsonl"),
    ("qrels/test.tsv", "no relevance judgements"),
])
def test_a_missing_file_is_one_line(tmp_path, remove, message):
    folder = _write(tmp_path / "ds")
    (folder / remove).unlink()
    with pytest.raises(BeirError, match=message) as err:
        load_beir(folder)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("qrels", "message"), [
    ("3\t7912\n", "expected query-id, corpus-id, score"),
    ("3\t7912\thigh\n", "is not a number"),
    ("77\t7912\t1\n", "queries.jsonl lacks"),
    ("", "holds no judgements"),
])
def test_bad_qrels_are_one_line_naming_the_file(tmp_path, qrels, message):
    with pytest.raises(BeirError, match=message):
        load_beir(_write(tmp_path / "ds", qrels=qrels))


def test_a_broken_corpus_line_names_its_line(tmp_path):
    folder = _write(tmp_path / "ds")
    with (folder / "corpus.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(BeirError, match=r"corpus.jsonl:5: not JSON"):
        load_beir(folder)


def test_not_a_folder(tmp_path):
    with pytest.raises(BeirError, match="does not exist"):
        load_beir(tmp_path / "nope")


def test_collection_name_is_a_safe_prefix():
    assert collection_name(Path("/data/scifact-dev")) == "beir-scifact-dev"
    assert collection_name(Path("/x/NF Corpus#1")) == "beir-nf-corpus-1"
