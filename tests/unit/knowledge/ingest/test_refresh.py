"""Refresh planning from hashes alone: new, changed, rechunked, deleted and unchanged documents."""

from __future__ import annotations

from llmship.knowledge.ingest.chunking import Chunk
from llmship.knowledge.ingest.documents import parse_document
from llmship.knowledge.ingest.refresh import plan_refresh


def make(doc_id: str, paragraphs: list[str]):
    doc = parse_document(doc_id, "\n\n".join(paragraphs).encode())
    chunks, pos = [], 0
    for seq, para in enumerate(paragraphs):  # one chunk per paragraph is enough to plan with
        start = doc.text.index(para, pos)
        pos = start + len(para)
        chunks.append(Chunk(id=f"{doc_id}#{seq}", doc_id=doc_id, seq=seq, text=para, hash=f"h-{para}",
                            token_count=len(para.split()) + 2, start_char=start, end_char=pos))
    return doc, chunks


def stored(pairs):
    docs = {doc.id: doc.hash for doc, _ in pairs}
    chunks = {c.id: c.hash for _, cs in pairs for c in cs}
    return docs, chunks


def plan(current, store_docs, store_chunks):
    return plan_refresh([d for d, _ in current], {d.id: cs for d, cs in current}, store_docs, store_chunks)


def test_unchanged_corpus_plans_nothing():
    corpus = [make("a.md", ["A one.", "A two."]), make("b.md", ["B one."])]
    p = plan(corpus, *stored(corpus))
    assert p.is_empty and p.documents_unchanged == ["a.md", "b.md"]
    assert p.summary() == "documents: 0 new, 0 changed, 2 unchanged, 0 deleted; chunks: 0 to upsert, 0 to delete"


def test_empty_store_upserts_everything():
    corpus = [make("b.md", ["B one."]), make("a.md", ["A one.", "A two."])]
    p = plan(corpus, {}, {})
    assert p.documents_new == ["a.md", "b.md"] and p.documents_to_upsert == ["a.md", "b.md"]
    assert p.chunks_to_upsert == ["a.md#0", "a.md#1", "b.md#0"] and p.chunks_to_delete == []


def test_new_changed_deleted_and_unchanged():
    old = [make("keep.md", ["Same."]), make("edit.md", ["One.", "Two.", "Three."]), make("gone.md", ["Bye.", "Now."]),
           make("dir/x#1.md", ["Hash in the name."])]
    new = [make("keep.md", ["Same."]), make("edit.md", ["One.", "Two changed."]), make("fresh.md", ["Hello."]),
           make("dir/x#1.md", ["Hash in the name."])]
    store_docs, store_chunks = stored(old)
    store_chunks["orphan.md#0"] = "h-orphan"  # a chunk whose document was never stored
    p = plan(new, store_docs, store_chunks)
    assert p.documents_new == ["fresh.md"]
    assert p.documents_changed == ["edit.md"]
    assert p.documents_unchanged == ["dir/x#1.md", "keep.md"]
    assert p.documents_to_delete == ["gone.md"]
    assert p.documents_to_upsert == ["edit.md", "fresh.md"]
    assert p.chunks_to_upsert == ["edit.md#0", "edit.md#1", "fresh.md#0"]  # all chunks of a changed document
    assert p.chunks_to_delete == ["edit.md#2", "gone.md#0", "gone.md#1", "orphan.md#0"]
    assert p.counts["chunks_to_delete"] == 4
    assert "1 new, 1 changed, 2 unchanged, 1 deleted" in p.summary()


def test_same_text_different_chunks_is_rechunked():
    doc, chunks = make("a.md", ["One.", "Two."])
    store_docs = {"a.md": doc.hash}
    store_chunks = {"a.md#0": "h-One. Two."}  # stored with other chunking settings
    p = plan([(doc, chunks)], store_docs, store_chunks)
    assert p.documents_rechunked == ["a.md"] and p.documents_changed == []
    assert p.chunks_to_upsert == ["a.md#0", "a.md#1"] and p.chunks_to_delete == []
    assert "1 rechunked" in p.summary()
