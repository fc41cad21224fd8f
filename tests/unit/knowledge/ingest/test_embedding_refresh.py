"""embedding_refresh against a real ArcadeDB: idempotence, stale chunks, literal text, kill-and-rerun, schedules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from pydantic import ValidationError

from llmship.knowledge.ingest.documents import parse_document
from llmship.knowledge.ingest.embedding_refresh import (
    ChunkingConfig,
    CorpusConfig,
    EmbedConfig,
    ScheduleConfig,
    apply_plan,
    embed_planned,
    load_corpus,
    open_cache,
    plan,
    run_embedding_refresh,
)
from tests.conftest import REPO

CORPUS = REPO / "data/corpus/docs"
SAMPLE = ["towns/tarnby.md", "people/agnes-kitto.md", "companies/kestrel-cycles.md", "guides/vellmark-overview.md",
          "notes/data-entry-incident-2022.md", "recipes/lantern-buns.txt", "festivals/tarn-regatta.html",
          "archive/ledger-1898-latin1.txt", "attachments/scanned-timetable.txt"]


@pytest.fixture()
def folder(tmp_path):
    """A small copy of the demo corpus, with one undecodable and one binary file among the documents."""
    root = tmp_path / "docs"
    for rel in SAMPLE:
        src = CORPUS / rel
        if src.exists():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / rel)
    return root


def _refresh(folder, graph, embedder, tmp_path):
    configs = (CorpusConfig(folder=str(folder)), ChunkingConfig(max_tokens=120, overlap_tokens=20),
               EmbedConfig(cache_path=str(tmp_path / "cache.sqlite")))
    return run_embedding_refresh(*configs, graph=graph, embedder=embedder)


def test_a_rerun_on_an_unchanged_folder_embeds_and_writes_nothing(folder, graph, embedder, tmp_path):
    first = _refresh(folder, graph, embedder, tmp_path)
    assert first.skipped_files == 2 and first.documents >= 5
    assert first.embedded == first.chunks == first.chunks_written > first.documents
    counts = graph.counts()
    assert counts["Chunk"] == first.chunks and counts["FROM_DOCUMENT"] == first.chunks
    assert counts["NEXT_CHUNK"] == first.chunks - first.documents
    second = _refresh(folder, graph, embedder, tmp_path)
    assert (second.embedded, second.chunks_written, second.documents_written) == (0, 0, 0)
    assert graph.counts() == counts
    assert second.version == first.version  # the marker moves only when something changed


def test_chunks_stored_without_spans_get_them_once(folder, graph, embedder, tmp_path):
    first = _refresh(folder, graph, embedder, tmp_path)
    with graph._session() as session:  # as an older release wrote them
        session.run("MATCH (c:Chunk) REMOVE c.start_char, c.end_char").consume()
    upgrade = _refresh(folder, graph, embedder, tmp_path)
    assert upgrade.embedded == 0 and upgrade.chunks_written == first.chunks  # from the cache, all rewritten
    rows = graph.read("MATCH (c:Chunk) RETURN c.doc_id AS doc, c.text AS text, c.start_char AS s, c.end_char AS e")
    assert all(r["s"] is not None and r["e"] > r["s"] for r in rows)
    for r in rows:  # the span indexes the document's (normalised) text
        assert parse_document(r["doc"], (folder / r["doc"]).read_bytes()).text[r["s"]:r["e"]] == r["text"]
    assert _refresh(folder, graph, embedder, tmp_path).chunks_written == 0


def test_changed_and_deleted_documents_leave_no_stale_chunks(folder, graph, embedder, tmp_path):
    _refresh(folder, graph, embedder, tmp_path)
    (folder / "recipes/lantern-buns.txt").unlink()
    changed = folder / "towns/tarnby.md"
    changed.write_text("# Tarnby\n\nTarnby is now a single short paragraph.\n")
    report = _refresh(folder, graph, embedder, tmp_path)
    assert report.documents_deleted == 1 and report.plan["documents_changed"] == 1
    assert report.embedded == 1  # only the new text; unchanged chunks elsewhere come from nowhere
    stored = graph.chunk_hashes()
    assert not [c for c in stored if c.startswith("recipes/lantern-buns.txt#")]
    assert [c for c in stored if c.startswith("towns/tarnby.md#")] == ["towns/tarnby.md#0"]
    assert "recipes/lantern-buns.txt" not in graph.document_hashes()


def test_cypher_fragments_in_documents_are_stored_literally(tmp_path, graph, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    nasty = 'He wrote "}) MATCH (n) DETACH DELETE n // and $param and a \\\' quote.'
    (folder / "nasty.md").write_text(f"# Quotes \"and\" 'more'\n\n{nasty}\n")
    _refresh(folder, graph, embedder, tmp_path)
    rows = graph.read("MATCH (c:Chunk) RETURN c.text AS text")
    assert len(rows) == 1 and nasty in rows[0]["text"]
    assert graph.counts()["Document"] == 1


def test_a_run_killed_after_writing_chunks_converges_on_rerun(folder, graph, embedder, tmp_path):
    """Kill between the chunk writes and the document writes, run again: same graph as one clean run."""
    corpus = load_corpus(CorpusConfig(folder=str(folder)), ChunkingConfig(max_tokens=120, overlap_tokens=20),
                         embedder)
    with open_cache(EmbedConfig(cache_path=str(tmp_path / "cache.sqlite"))) as cache:
        refresh = plan(corpus, graph)
        embed_planned(corpus, refresh, embedder, cache)
        chunks = [c for cs in corpus.chunks.values() for c in cs][:5]
        vectors = cache.get_many(embedder.model_id, [c.hash for c in chunks])
        graph.upsert_chunks([{"id": c.id, "doc_id": c.doc_id, "seq": c.seq, "text": c.text, "hash": c.hash,
                              "embedding": vectors[c.hash].tolist()} for c in chunks])  # ... and the process died
    assert not any(graph.document_hashes().values())  # no document carries a hash: all are still pending
    _refresh(folder, graph, embedder, tmp_path)
    after_kill = graph.counts()
    graph.clear()
    _refresh(folder, graph, embedder, tmp_path)
    assert graph.counts() == after_kill


def test_apply_refuses_chunks_without_embeddings(folder, graph, embedder, tmp_path):
    corpus = load_corpus(CorpusConfig(folder=str(folder)), ChunkingConfig(), embedder)
    with (open_cache(EmbedConfig(cache_path=str(tmp_path / "empty.sqlite"))) as cache,
          pytest.raises(RuntimeError, match="no cached embedding")):
        apply_plan(corpus, plan(corpus, graph), graph, cache, embedder.model_id)
    assert graph.counts().get("Chunk", 0) == 0


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 * * * 1-5", "0 0 1,15 * *"])
def test_valid_cron_expressions(cron):
    assert ScheduleConfig(cron_expression=cron).cron_expression == cron


@pytest.mark.parametrize("cron", ["0 3 * *", "61 * * * *", "0 25 * * *", "every day", "0 3 * * * *"])
def test_invalid_cron_expressions_are_rejected(cron):
    with pytest.raises(ValidationError):
        ScheduleConfig(cron_expression=cron)


def test_scheduling_on_the_local_orchestrator_says_so_instead_of_crashing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  schedule:\n    cron_expression: '99 * * * *'\n")
    out = subprocess.run([sys.executable, "-m", "pipelines.schedule", "embedding_refresh", "-c", str(bad)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "out of range" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    fresh = subprocess.run([sys.executable, "-m", "pipelines.schedule", "embedding_refresh"], cwd=REPO,
                           env={**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml")}, capture_output=True,
                           text=True, timeout=300)
    assert fresh.returncode == 2, fresh.stderr[-2000:]
    assert "cannot run schedules" in fresh.stderr and "knowledge-refresh.yml" in fresh.stderr

