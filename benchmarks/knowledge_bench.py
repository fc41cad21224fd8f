"""Knowledge-graph benchmarks on a throw-away embedded ArcadeDB, one server, one run.

    python benchmarks/knowledge_bench.py [--entities 5000] [--relationships 10000] [--per-row-sample 1000]

Part 1 — kg_update writes: N entities plus M relationships (half ``MENTIONS`` chunk→entity, half weighted
``CO_OCCURS`` entity→entity; synthetic, seeded) written two ways, each into fresh keys:

- ``UNWIND $rows`` batches of ``--batch-size`` (1,000) through ``GraphStore.write`` and the very statements
  kg_update uses (``kg_merge_entities``, ``kg_link_mentions``, ``kg_merge_co_occurs``), one transaction each;
- the seed chapter's way: one ``MERGE`` per row, each in its own transaction — but with parameters, never
  formatted. It is slow, so only ``--per-row-sample`` rows are written (entities and relationships in the
  same proportion as the batched run) and its rows/s is extrapolated to N + M rows; the table says so.

Parts 2–3 (refresh timings) are to come: add a ``part_N(store, args) -> list[Result]`` and call it in ``main``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._lib import free_port
from llmship.knowledge.graphstore import server
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore

PER_ROW_ENTITY = """
MERGE (e:Entity {key: $key})
ON CREATE SET e.name = $name, e.aliases = $aliases, e.mention_count = 0, e.chunk_count = 0
SET e.label = $label
"""
PER_ROW_MENTION = """
MATCH (c:Chunk {id: $chunk_id})
MATCH (e:Entity {key: $key})
MERGE (c)-[m:MENTIONS]->(e)
SET m.count = $count, m.surfaces = $surfaces
"""
PER_ROW_CO_OCCURS = """
MATCH (a:Entity {key: $a})
MATCH (b:Entity {key: $b})
MERGE (a)-[x:CO_OCCURS]->(b)
SET x.weight = $weight
"""
LABELS = ("PERSON", "ORG", "PLACE", "FAC", "NORP", "PRODUCT", "EVENT", "WORK_OF_ART")


class Result(BaseModel):
    part: str
    method: str
    rows: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


class WriteSet(BaseModel):
    """Synthetic kg_update rows under one key prefix (so the two methods never touch each other's nodes)."""

    chunks: list[dict]
    entities: list[dict]
    mentions: list[dict]
    co_occurs: list[dict]

    @property
    def rows(self) -> int:
        return len(self.entities) + len(self.mentions) + len(self.co_occurs)


@contextmanager
def embedded_graph(batch_size: int = 1000) -> Iterator[GraphStore]:
    """A fresh embedded ArcadeDB on free ports in a temp folder, schema ready; stopped and removed after."""
    root = Path(tempfile.mkdtemp(prefix="knowledge-bench-"))
    try:
        info = server.start(bolt_port=free_port(), http_port=free_port(), root=root)
        print(f"ArcadeDB started in {info.startup_s}s at {info.uri} ({root})")
        with GraphStore.connect(GraphSettings.for_server(info, batch_size=batch_size)) as store:
            store.ensure_schema()
            yield store
    finally:
        server.stop(root)
        shutil.rmtree(root, ignore_errors=True)


def synthetic(prefix: str, n_entities: int, n_relationships: int, seed: int = 0) -> WriteSet:
    """``n_entities`` entities, ``n_relationships`` unique relationships: half MENTIONS from
    ``n_entities // 5`` chunks, half CO_OCCURS (a.key < b.key)."""
    rng = np.random.default_rng(seed)
    n_chunks = max(1, n_entities // 5)
    chunks = [{"id": f"{prefix}-c{i:06d}", "doc_id": f"{prefix}-d{i // 20:05d}", "seq": i % 20,
               "text": f"chunk {i}", "hash": f"h{i}"} for i in range(n_chunks)]
    entities = [{"key": f"{prefix}:e{i:06d}", "name": f"Entity {i}", "label": LABELS[i % len(LABELS)],
                 "aliases": [f"E{i}"] if i % 3 == 0 else []} for i in range(n_entities)]
    n_mentions = min(n_relationships // 2, n_chunks * n_entities)
    n_co = min(n_relationships - n_mentions, n_entities * (n_entities - 1) // 2)

    def unique_pairs(count: int, high_a: int, high_b: int, ordered: bool) -> list[tuple[int, int]]:
        seen: set[tuple[int, int]] = set()
        while len(seen) < count:
            a, b = int(rng.integers(high_a)), int(rng.integers(high_b))
            if ordered:
                if a == b:
                    continue
                a, b = min(a, b), max(a, b)
            seen.add((a, b))
        return sorted(seen)

    mentions = [{"chunk_id": chunks[c]["id"], "key": entities[e]["key"], "count": 1 + (c + e) % 3,
                 "surfaces": [entities[e]["name"]]} for c, e in unique_pairs(n_mentions, n_chunks, n_entities, False)]
    co = [{"a": entities[a]["key"], "b": entities[b]["key"], "weight": 1 + (a * b) % 7}
          for a, b in unique_pairs(n_co, n_entities, n_entities, True)]
    return WriteSet(chunks=chunks, entities=entities, mentions=mentions, co_occurs=co)


def write_batched(store: GraphStore, data: WriteSet) -> float:
    """kg_update's writes: ``UNWIND $rows`` batches, one transaction per batch. Returns seconds."""
    t0 = time.perf_counter()
    store.write("kg_merge_entities", data.entities)
    store.write("kg_link_mentions", data.mentions)
    store.write("kg_merge_co_occurs", data.co_occurs)
    return time.perf_counter() - t0


def write_per_row(store: GraphStore, data: WriteSet) -> float:
    """One parameterised MERGE per row, each in its own transaction (the seed chapter's shape). Returns
    seconds."""
    def one(statement: str) -> Callable:
        return lambda tx, row: tx.run(statement, row).consume()

    t0 = time.perf_counter()
    with store._session() as session:  # the raw driver path, on purpose
        for rows, statement in ((data.entities, PER_ROW_ENTITY), (data.mentions, PER_ROW_MENTION),
                                (data.co_occurs, PER_ROW_CO_OCCURS)):
            work = one(statement)
            for row in rows:
                session.execute_write(work, row)
    return time.perf_counter() - t0


def _sample_sizes(entities: int, relationships: int, rows: int) -> tuple[int, int]:
    """Entities and relationships of a ``rows``-row sample, in the proportions of the full run."""
    n_e = max(1, round(rows * entities / max(entities + relationships, 1)))
    return n_e, max(0, rows - n_e)


def warm_up(store: GraphStore) -> None:
    """A few hundred rows both ways first, so neither method pays the JVM's warm-up (JIT, caches)."""
    data = synthetic("warm", 200, 400, seed=1)
    store.upsert_chunks(data.chunks)
    write_batched(store, data)
    write_per_row(store, synthetic("warm2", 50, 100, seed=2).model_copy(update={"chunks": data.chunks}))


def part1_writes(store: GraphStore, entities: int, relationships: int, per_row_sample: int | None) -> list[Result]:
    warm_up(store)
    batched = synthetic("batched", entities, relationships)
    store.upsert_chunks(batched.chunks)  # the chunks exist before kg_update runs: not timed
    before = store.counts()
    seconds = write_batched(store, batched)
    after = store.counts()
    written = {k: after[k] - before[k] for k in ("Entity", "MENTIONS", "CO_OCCURS")}
    if written != {"Entity": len(batched.entities), "MENTIONS": len(batched.mentions),
                   "CO_OCCURS": len(batched.co_occurs)}:
        raise SystemExit(f"batched write lost rows: {written}")
    out = [Result(part="1 writes", method=f"UNWIND $rows, batches of {store.settings.batch_size}",
                  rows=batched.rows, seconds=seconds,
                  note=f"{len(batched.entities)} entities, {len(batched.mentions)} MENTIONS, "
                       f"{len(batched.co_occurs)} CO_OCCURS")]
    if per_row_sample and per_row_sample < batched.rows:
        per_row = synthetic("perrow", *_sample_sizes(entities, relationships, per_row_sample))
        note = f"SAMPLE of {per_row.rows} rows, rows/s extrapolated to {batched.rows}"
    else:
        per_row = synthetic("perrow", entities, relationships)
        note = "all rows"
    store.upsert_chunks(per_row.chunks)
    seconds = write_per_row(store, per_row)
    out.append(Result(part="1 writes", method="one MERGE per row and transaction", rows=per_row.rows,
                      seconds=seconds, note=f"{note}: {len(per_row.entities)} entities, {len(per_row.mentions)} "
                                            f"MENTIONS, {len(per_row.co_occurs)} CO_OCCURS"))
    return out


def part2_refresh(store: GraphStore, folder: str, cache_dir: Path) -> dict:
    """Parts 2-3: embedding_refresh of a corpus with a cold embedding cache, then an unchanged re-run."""
    from llmship.knowledge.embedder import Embedder
    from llmship.knowledge.ingest.embedding_refresh import (
        ChunkingConfig,
        CorpusConfig,
        EmbedConfig,
        run_embedding_refresh,
    )

    embedder = Embedder.load(threads=1)
    configs = (CorpusConfig(folder=folder), ChunkingConfig(), EmbedConfig(cache_path=str(cache_dir / "cache.sqlite")))
    store.clear()
    started = time.perf_counter()
    first = run_embedding_refresh(*configs, graph=store, embedder=embedder)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = run_embedding_refresh(*configs, graph=store, embedder=embedder)
    again_s = time.perf_counter() - started
    return {"documents": first.documents, "chunks": first.chunks, "embedded": first.embedded, "first_s": first_s,
            "rerun_s": again_s, "rerun_embedded": again.embedded, "chunks_per_s": first.embedded / first_s}


def print_refresh(r: dict) -> None:
    ratio = r["rerun_s"] / r["first_s"]
    print(f"\nembedding_refresh: {r['documents']} documents, {r['chunks']} chunks, cold embedding cache")
    print(f"  first run          {r['first_s']:8.1f} s   {r['embedded']} chunks embedded: "
          f"{r['chunks_per_s']:.1f} chunks/s end to end (MiniLM, one thread)")
    print(f"  unchanged re-run   {r['rerun_s']:8.2f} s   {r['rerun_embedded']} embedded")
    print(f"  re-run / first     {100 * ratio:7.1f} %   [target <= 5 %] {'ok' if ratio <= 0.05 else 'MISSED'}")


def print_table(results: list[Result]) -> None:
    print(f"\n{'part':<9} {'method':<36} {'rows':>7} {'seconds':>8} {'rows/s':>9}  note")
    for r in results:
        print(f"{r.part:<9} {r.method:<36} {r.rows:>7} {r.seconds:>8.2f} {r.rate:>9.0f}  {r.note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=5000)
    parser.add_argument("--relationships", type=int, default=10000)
    parser.add_argument("--per-row-sample", type=int, default=1000,
                        help="rows written one MERGE per transaction (rate extrapolated); 0: all rows")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parent.parent / "data/corpus/docs"),
                        help="documents for the refresh timing (parts 2-3); '' skips them")
    args = parser.parse_args(argv)
    results: list[Result] = []
    with embedded_graph(args.batch_size) as store:
        part1 = part1_writes(store, args.entities, args.relationships, args.per_row_sample or None)
        results += part1
        refresh = None
        if args.corpus:
            with tempfile.TemporaryDirectory(prefix="knowledge-bench-cache-") as cache_dir:
                refresh = part2_refresh(store, args.corpus, Path(cache_dir))
    print_table(results)
    batched, per_row = part1
    est = (batched.rows / per_row.rate) if per_row.rate else float("nan")
    print(f"\nUNWIND batches / one MERGE per row: {batched.rate / per_row.rate:.1f}x rows/s (issue target >= 20x); "
          f"{batched.rows} rows take {batched.seconds:.1f}s batched vs ~{est:.0f}s per row"
          f"{' (extrapolated from the sample)' if per_row.rows < batched.rows else ''}")
    if refresh:
        print_refresh(refresh)


if __name__ == "__main__":
    main()
