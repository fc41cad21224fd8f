"""kg_update: entities, mentions, co-occurrences and graph embeddings for the chunks that changed.

``run_kg_update(graph, extractor)`` does, in order:

1. **Pending chunks**: those whose ``kg_hash`` (the chunk hash their mentions were extracted from) is
   missing or differs from ``hash``, read with their text and hash, ordered by id.
2. **NER + linking** over all pending chunks at once (``EntityExtractor`` then ``entities.link``), against
   the entities already stored (keys, names, aliases), so an alias found today joins the entity made
   yesterday under that entity's key — keys are stable, and ``MERGE`` on ``Entity.key`` converges.
3. **Writes, one transaction per batch of chunks** (``GraphStore.write_together``): delete the batch's old
   ``MENTIONS``, ``MERGE`` its entities, ``MERGE`` the new ``MENTIONS {count, surfaces}``, and set
   ``c.kg_hash = <the hash that was read>`` last. A batch lands whole or not at all, so a run killed
   half-way leaves exactly the unwritten chunks pending; and a chunk whose text changes while we run keeps a
   ``kg_hash`` that differs from its new hash, so it stays pending too.
4. **Derived data, recomputed from MENTIONS and written as a diff** (``refresh_derived``): each entity's
   ``name``/``aliases`` (most frequent full surface form, ``entities.summarise``), ``mention_count``
   (occurrences) and ``chunk_count``; entities left without mentions (their chunks were deleted or changed)
   are removed; ``(:Entity)-[:CO_OCCURS {weight}]->(:Entity)`` with ``a.key < b.key`` and weight = chunks
   mentioning both. Being a function of the stored MENTIONS alone, this step converges however often and
   wherever it was interrupted before.
5. **Graph embeddings** (``embed_entities``): the GCN autoencoder of ``graph_embeddings`` over the entities
   and CO_OCCURS edges, written to ``Entity.graph_embedding``. A fingerprint of its inputs (entities,
   edges, config) is kept on the Meta node: when nothing changed and every entity has a vector, training is
   skipped (its result would be the same: the training is seeded and deterministic).

Every statement is a fixed, parameterised entry of ``cypher.QUERIES`` (``UNWIND $rows``); nothing is formatted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from pydantic import BaseModel

from llmship.knowledge.graphstore import cypher
from llmship.knowledge.graphstore.graph import GraphStore, graph_job
from llmship.knowledge.kg.entities import EntityExtractor, Mention, link, summarise
from llmship.knowledge.kg.graph_embeddings import EmbeddingReport, GcnConfig, train_embeddings

log = logging.getLogger(__name__)

FINGERPRINT_META = "kg_embedding_fingerprint"
AUC_META = "kg_embedding_auc"
JOB = "kg_update"


class DerivedStats(BaseModel):
    entities: int = 0
    mentions: int = 0  # MENTIONS relationships (chunk, entity)
    co_occurs: int = 0
    entities_updated: int = 0
    entities_removed: int = 0
    co_occurs_written: int = 0
    co_occurs_removed: int = 0


class KgReport(BaseModel):
    chunks_pending: int = 0
    chunks_processed: int = 0
    batches: int = 0
    mentions: int = 0  # entity mentions found in the processed chunks
    mention_links: int = 0  # MENTIONS relationships written for them
    entities: int = 0  # in the graph afterwards
    co_occurs: int = 0  # in the graph afterwards
    entities_updated: int = 0
    entities_removed: int = 0
    co_occurs_written: int = 0
    co_occurs_removed: int = 0
    ner_seconds: float = 0.0
    ner_chunks_per_s: float | None = None
    seconds: float = 0.0
    embedding: EmbeddingReport | None = None

    def summary(self) -> str:
        emb = self.embedding
        auc = "" if emb is None else (f", embeddings {'unchanged' if emb.skipped else 'trained'}"
                                      f" (AUC {emb.auc if emb.auc is not None else 'n/a'})")
        return (f"{self.chunks_processed}/{self.chunks_pending} chunks processed, {self.mentions} mentions; "
                f"graph: {self.entities} entities ({self.entities_removed} removed), {self.co_occurs} co-occurrences"
                f"{auc}; {self.seconds:.1f}s")


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _mention_rows(chunk_ids: Sequence[str], mentions: Sequence[Mention], keys: Sequence[str | None]
                  ) -> dict[str, list[dict[str, Any]]]:
    """chunk id → MENTIONS rows ``{chunk_id, key, count, surfaces}`` (surfaces in text order)."""
    from llmship.knowledge.kg.entities import clean_surface

    per: dict[str, dict[str, list[str]]] = {cid: {} for cid in chunk_ids}
    for mention, key in zip(mentions, keys, strict=True):
        if key is not None:
            per[mention.chunk_id].setdefault(key, []).append(clean_surface(mention.text))
    return {cid: [{"chunk_id": cid, "key": key, "count": len(s), "surfaces": s} for key, s in sorted(by_key.items())]
            for cid, by_key in per.items()}


@graph_job(JOB)
def run_kg_update(graph: GraphStore, extractor: EntityExtractor, *, batch_size: int = 256, embed: bool = True,
                  gcn: GcnConfig | None = None, progress: bool = True,
                  on_batch: Callable[[int, int], None] | None = None) -> KgReport:
    """Bring entities, mentions, co-occurrences (and graph embeddings, ``embed``) up to date with the chunks.

    ``on_batch(batches_done, chunks_done)`` is called after each committed chunk batch (progress hooks; tests
    raise from it to simulate a run killed half-way). See the module docstring for the guarantees; a graph that
    goes away is one ``GraphUnavailable`` line, and a re-run after it is back converges."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    started = time.perf_counter()
    report = KgReport()
    pending = graph.read(cypher.PENDING_CHUNKS)
    report.chunks_pending = len(pending)
    if pending:
        existing = graph.read(cypher.EXISTING_ENTITIES)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(pending), desc="kg_update NER", unit="chunk", leave=False)
        t0 = time.perf_counter()
        mentions: list[Mention] = []
        for batch in _batches(pending, batch_size):
            mentions.extend(extractor.extract([(r["id"], r["text"] or "") for r in batch]))
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        report.ner_seconds = round(time.perf_counter() - t0, 3)
        report.ner_chunks_per_s = round(len(pending) / max(report.ner_seconds, 1e-9), 1)
        report.mentions = len(mentions)
        linking = link(mentions, existing)
        entity_rows = {e.key: {"key": e.key, "name": e.name, "label": e.label, "aliases": e.aliases}
                       for e in linking.entities}
        rows_by_chunk = _mention_rows([r["id"] for r in pending], mentions, linking.keys)
        log.info("kg_update: %d pending chunks, %d mentions of %d entities (NER %.1fs)", len(pending),
                 len(mentions), len(entity_rows), report.ner_seconds)
        batches = _batches(pending, batch_size)
        for number, batch in enumerate(batches, start=1):
            links = [row for r in batch for row in rows_by_chunk[r["id"]]]
            graph.write_together([
                ("kg_unlink_mentions", [{"id": r["id"]} for r in batch]),
                ("kg_merge_entities", [entity_rows[k] for k in sorted({row["key"] for row in links})]),
                ("kg_link_mentions", links),
                ("kg_mark_chunks", [{"id": r["id"], "hash": r["hash"]} for r in batch]),  # last
            ], what=f"mentions batch {number}/{len(batches)}")
            report.batches = number
            report.chunks_processed += len(batch)
            report.mention_links += len(links)
            log.debug("%s: mentions batch %d/%d committed (%d/%d chunks)", JOB, number, len(batches),
                      report.chunks_processed, len(pending))
            if on_batch is not None:
                on_batch(number, report.chunks_processed)
    derived = refresh_derived(graph)
    for field in ("entities", "co_occurs", "entities_updated", "entities_removed", "co_occurs_written",
                  "co_occurs_removed"):
        setattr(report, field, getattr(derived, field))
    if embed:
        report.embedding = embed_entities(graph, gcn or GcnConfig())
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("kg_update: %s", report.summary())
    return report


@graph_job(JOB)
def refresh_derived(graph: GraphStore) -> DerivedStats:
    """Entity names/aliases/counts, stale-entity removal and CO_OCCURS, from the stored MENTIONS (a diff)."""
    surfaces: dict[str, Counter[str]] = defaultdict(Counter)
    chunks_of: dict[str, set[str]] = defaultdict(set)
    keys_in: dict[str, set[str]] = defaultdict(set)
    rows = graph.read(cypher.ALL_MENTIONS)
    for row in rows:
        surfaces[row["key"]].update(row["surfaces"] or [])
        chunks_of[row["key"]].add(row["chunk"])
        keys_in[row["chunk"]].add(row["key"])
    stored = {r["key"]: r for r in graph.read(cypher.EXISTING_ENTITIES)}
    stale = sorted(k for k in stored if k not in chunks_of)
    updates = []
    for key in sorted(chunks_of):
        name, aliases, count = summarise(key, surfaces[key])
        want = {"key": key, "name": name, "aliases": aliases, "mention_count": count,
                "chunk_count": len(chunks_of[key])}
        have = stored.get(key, {})
        if any(have.get(f) != want[f] for f in ("name", "mention_count", "chunk_count")) or \
                list(have.get("aliases") or []) != aliases:
            updates.append(want)
    pairs: Counter[tuple[str, str]] = Counter()
    for keys in keys_in.values():
        pairs.update(combinations(sorted(keys), 2))
    current = {(r["a"], r["b"]): r["weight"] for r in graph.read(cypher.ALL_CO_OCCURS)}
    drop = [{"a": a, "b": b} for (a, b) in sorted(current) if (a, b) not in pairs]
    put = [{"a": a, "b": b, "weight": w} for (a, b), w in sorted(pairs.items()) if current.get((a, b)) != w]
    graph.write("kg_delete_co_occurs", drop)
    graph.write("kg_delete_entities", [{"key": k} for k in stale])
    graph.write("kg_set_entity_stats", updates)
    graph.write("kg_merge_co_occurs", put)
    return DerivedStats(entities=len(chunks_of), mentions=len(rows), co_occurs=len(pairs),
                        entities_updated=len(updates), entities_removed=len(stale),
                        co_occurs_written=len(put), co_occurs_removed=len(drop))


@graph_job(JOB)
def embed_entities(graph: GraphStore, config: GcnConfig | None = None, *, force: bool = False) -> EmbeddingReport:
    """Train the GCN autoencoder on the stored entity graph and write ``Entity.graph_embedding``; skipped
    when its inputs are unchanged since the last training and every entity has a vector (``force``: train)."""
    config = config or GcnConfig()
    entities = sorted(graph.read(cypher.EMBEDDING_INPUTS), key=lambda r: r["key"])
    index = {r["key"]: i for i, r in enumerate(entities)}
    edges = sorted((index[r["a"]], index[r["b"]], float(r["weight"] or 1)) for r in graph.read(cypher.ALL_CO_OCCURS)
                   if r["a"] in index and r["b"] in index)
    knobs = config.model_dump(exclude={"threads"})
    fingerprint = hashlib.sha256(json.dumps(
        {"config": knobs, "nodes": [(r["key"], r["label"], r["name"]) for r in entities], "edges": edges},
        sort_keys=True, default=str).encode()).hexdigest()
    missing = graph.read(cypher.MISSING_EMBEDDINGS, dim=config.dim)[0]["n"]
    if not force and not missing and graph.get_meta(FINGERPRINT_META) == fingerprint:
        return EmbeddingReport(nodes=len(entities), edges=len(edges), dim=config.dim, epochs=0,
                               auc=graph.get_meta(AUC_META), skipped=True, note="inputs unchanged")
    vectors, report = train_embeddings([r["label"] or "" for r in entities], [r["name"] or "" for r in entities],
                                       edges, config)
    rows = [{"key": r["key"], "embedding": [float(v) for v in np.asarray(vec)]} for r, vec in zip(
        entities, vectors, strict=True)]
    report.written = graph.write("kg_set_graph_embeddings", rows)
    graph.set_meta(FINGERPRINT_META, fingerprint)
    graph.set_meta(AUC_META, report.auc)
    return report
