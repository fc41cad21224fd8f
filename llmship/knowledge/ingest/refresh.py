"""Plan an embedding refresh: what to write to and remove from the graph, knowing only hashes.

Pure and graph-free: given the documents and chunks computed now and the ``id → hash`` maps read from the
store, ``plan_refresh`` says which documents and chunks to upsert and which to delete. Applying the plan
(and embedding the chunks to upsert, through the cache) is the pipeline's business.

- A new document, or one whose text hash changed: upsert it and *all* its chunks (offsets may have moved
  even where a chunk's text did not; the embedding cache makes unchanged texts free anyway), and delete
  its stored chunks that no longer exist.
- A document whose hash is unchanged but whose stored chunks differ from the computed ones (chunking
  settings changed, or an earlier run was interrupted) is treated as changed ("rechunked").
- A stored document that is no longer in the folder: delete it and all its chunks. Stored chunks whose
  document is gone or never existed (orphans) are deleted too.
- Everything else is untouched: a run over an unchanged corpus plans nothing.

A stored chunk belongs to the document named before the last ``#`` of its id (``doc_id#seq``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from llmship.knowledge.ingest.chunking import Chunk
from llmship.knowledge.ingest.documents import Document


class RefreshPlan(BaseModel):
    model_config = ConfigDict(frozen=True)
    documents_new: list[str]
    documents_changed: list[str]
    documents_rechunked: list[str]
    documents_unchanged: list[str]
    documents_to_delete: list[str]
    chunks_to_upsert: list[str]
    chunks_to_delete: list[str]

    @property
    def documents_to_upsert(self) -> list[str]:
        return sorted(self.documents_new + self.documents_changed + self.documents_rechunked)

    @property
    def is_empty(self) -> bool:
        return not (self.documents_to_upsert or self.documents_to_delete or self.chunks_to_upsert
                    or self.chunks_to_delete)

    @property
    def counts(self) -> dict[str, int]:
        return {"documents_new": len(self.documents_new), "documents_changed": len(self.documents_changed),
                "documents_rechunked": len(self.documents_rechunked),
                "documents_unchanged": len(self.documents_unchanged),
                "documents_to_delete": len(self.documents_to_delete),
                "chunks_to_upsert": len(self.chunks_to_upsert), "chunks_to_delete": len(self.chunks_to_delete)}

    def summary(self) -> str:
        c = self.counts
        rechunked = f", {c['documents_rechunked']} rechunked" if c["documents_rechunked"] else ""
        return (f"documents: {c['documents_new']} new, {c['documents_changed']} changed{rechunked}, "
                f"{c['documents_unchanged']} unchanged, {c['documents_to_delete']} deleted; "
                f"chunks: {c['chunks_to_upsert']} to upsert, {c['chunks_to_delete']} to delete")


def chunk_doc_id(chunk_id: str) -> str:
    return chunk_id.rpartition("#")[0]


def plan_refresh(documents: Sequence[Document], chunks_by_doc: Mapping[str, Sequence[Chunk]],
                 stored_doc_hashes: Mapping[str, str], stored_chunk_hashes: Mapping[str, str]) -> RefreshPlan:
    """Compare what is computed now (``documents``, ``chunks_by_doc``) with what the store holds."""
    stored_chunks_by_doc: dict[str, dict[str, str]] = {}
    for chunk_id, digest in stored_chunk_hashes.items():
        stored_chunks_by_doc.setdefault(chunk_doc_id(chunk_id), {})[chunk_id] = digest
    current = {doc.id: doc for doc in documents}
    new, changed, rechunked, unchanged = [], [], [], []
    upsert: list[str] = []
    delete: list[str] = []
    for doc_id in sorted(current):
        chunks = {c.id: c.hash for c in chunks_by_doc.get(doc_id, ())}
        stored = stored_chunks_by_doc.get(doc_id, {})
        if doc_id not in stored_doc_hashes:
            new.append(doc_id)
        elif stored_doc_hashes[doc_id] != current[doc_id].hash:
            changed.append(doc_id)
        elif stored != chunks:
            rechunked.append(doc_id)
        else:
            unchanged.append(doc_id)
            continue
        upsert.extend(sorted(chunks, key=_seq_order))
        delete.extend(sorted((cid for cid in stored if cid not in chunks), key=_seq_order))
    gone = sorted(set(stored_doc_hashes) - set(current))
    for doc_id in sorted(set(stored_chunks_by_doc) - set(current)):  # deleted documents and orphan chunks
        delete.extend(sorted(stored_chunks_by_doc[doc_id], key=_seq_order))
    return RefreshPlan(documents_new=new, documents_changed=changed, documents_rechunked=rechunked,
                       documents_unchanged=unchanged, documents_to_delete=gone, chunks_to_upsert=upsert,
                       chunks_to_delete=delete)


def _seq_order(chunk_id: str) -> tuple[str, int, str]:
    doc_id, _, seq = chunk_id.rpartition("#")
    return (doc_id, int(seq), "") if seq.isdigit() else (doc_id, -1, seq)
