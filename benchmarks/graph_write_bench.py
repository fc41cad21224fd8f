"""Graph writes: ``UNWIND $rows`` batches (``GraphStore``) vs one MERGE per row, on the same server, in one run.

    python benchmarks/graph_write_bench.py [--rows 5000] [--per-row 500] [--dims 384]

Starts a throw-away embedded ArcadeDB (free ports, temp folder) unless ``--use-env``
points it at the graph from ``GraphSettings.from_env()`` (e.g. a Neo4j via NEO4J_URI).
The peer is what the seed chapter did, minus its f-strings: one parameterised
MERGE per row, each in its own transaction. Chunks carry a ``--dims`` embedding,
so the vector and full-text indexes are maintained in both cases.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._lib import free_port
from llmship.knowledge.graphstore import server
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore

PER_ROW = """
MERGE (c:Chunk {id: $id})
SET c.doc_id = $doc_id, c.seq = $seq, c.text = $text, c.hash = $hash, c.embedding = $embedding
MERGE (d:Document {id: $doc_id})
MERGE (c)-[:FROM_DOCUMENT]->(d)
"""


def _rows(n: int, dims: int, prefix: str) -> list[dict]:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, dims)).astype(np.float32)
    return [{"id": f"{prefix}-{i}", "doc_id": f"{prefix}-doc-{i // 50}", "seq": i % 50,
             "text": f"chunk {i} of the benchmark corpus, word{i % 97}", "hash": f"h{i}", "embedding": vecs[i].tolist()}
            for i in range(n)]


def measure(store: GraphStore, n_batched: int, n_single: int, dims: int) -> list[tuple[str, int, float]]:
    store.ensure_schema(dims)
    out = []
    docs = [{"id": f"bd-{i}", "hash": f"h{i}", "title": f"t{i}"} for i in range(n_batched)]
    t0 = time.perf_counter()
    store.upsert_documents(docs)
    out.append((f"documents, UNWIND batches of {store.settings.batch_size}", len(docs),
                len(docs) / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    with store._session() as session:
        for row in docs[:n_single]:
            session.execute_write(lambda tx, r: tx.run(
                "MERGE (d:Document {id: $id}) SET d.hash = $hash, d.title = $title", **r).consume(), row)
    out.append(("documents, one MERGE per row and transaction", n_single, n_single / (time.perf_counter() - t0)))
    store.delete_documents([r["id"] for r in docs])
    rows = _rows(n_batched, dims, "b")
    t0 = time.perf_counter()
    store.upsert_chunks(rows)
    out.append((f"chunks ({dims}-d), UNWIND batches of {store.settings.batch_size}", len(rows),
                len(rows) / (time.perf_counter() - t0)))
    single = _rows(n_single, dims, "s")
    t0 = time.perf_counter()
    with store._session() as session:
        for row in single:
            session.execute_write(lambda tx, r: tx.run(PER_ROW, **r).consume(), row)
    out.append((f"chunks ({dims}-d), one MERGE per row and transaction", len(single),
                len(single) / (time.perf_counter() - t0)))
    store.clear()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--per-row", type=int, default=500)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--use-env", action="store_true", help="write to GraphSettings.from_env() (it is CLEARED)")
    args = parser.parse_args()
    root = None
    if args.use_env:
        settings = GraphSettings.from_env()
    else:
        root = Path(tempfile.mkdtemp(prefix="graph-bench-"))
        info = server.start(bolt_port=free_port(), http_port=free_port(), root=root)
        print(f"ArcadeDB started in {info.startup_s}s at {info.uri}")
        settings = GraphSettings.for_server(info)
    try:
        with GraphStore.connect(settings) as store:
            store.clear()
            results = measure(store, args.rows, args.per_row, args.dims)
    finally:
        if root is not None:
            server.stop(root)
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'write':<56} {'rows':>6} {'rows/s':>9}")
    for label, n, rate in results:
        print(f"{label:<56} {n:>6} {rate:>9.0f}")
    print(f"\nUNWIND batches / one MERGE per row: documents {results[0][2] / results[1][2]:.1f}x, "
          f"chunks {results[2][2] / results[3][2]:.1f}x")


if __name__ == "__main__":
    main()
