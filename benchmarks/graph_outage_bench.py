"""Retrieval while the graph is down: time to the 503, with the fail-fast window (``GraphSettings.fail_fast_s``)
against without it, in one run.

    python benchmarks/graph_outage_bench.py [--requests 5] [--retry-s 2] [--fail-fast-s 5]

The retriever is the retrieval service's (hybrid search, the offline MiniLM embedder, the service's driver
settings: ``LLMSHIP_RAG_GRAPH_RETRY_S`` 2 s of retries, a 2 s connect timeout); the graph is a Bolt port nobody
listens on. Each request is a new question (no query-vector cache hit). Prints each request's time to its
``GraphUnavailable`` (the service's 503) and the ratio of the totals.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._lib import free_port
from llmship.errors import GraphUnavailable
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.retrieval.retriever import Retriever


def times_to_503(embedder: Embedder, port: int, requests: int, retry_s: float, fail_fast_s: float) -> list[float]:
    settings = GraphSettings(uri=f"bolt://127.0.0.1:{port}", password="unused", connect_timeout_s=2.0,
                             max_retry_time_s=retry_s, fail_fast_s=fail_fast_s)
    with GraphStore.connect(settings, verify=False) as store:
        retriever = Retriever(store, embedder, reranker=None)
        out = []
        for i in range(requests):
            started = time.perf_counter()
            try:
                asyncio.run(retriever.candidates(f"Where does question {i} lead?", 5, "hybrid"))
                raise SystemExit("the search succeeded: something listens on the dead port")
            except GraphUnavailable:
                out.append(time.perf_counter() - started)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--retry-s", type=float, default=2.0)
    parser.add_argument("--fail-fast-s", type=float, default=5.0)
    args = parser.parse_args()
    embedder = Embedder.load(threads=1)
    embedder.embed(["warm-up"])
    port = free_port()
    runs = {"without the window (fail_fast_s=0)": times_to_503(embedder, port, args.requests, args.retry_s, 0.0),
            f"with the window (fail_fast_s={args.fail_fast_s:g})":
                times_to_503(embedder, port, args.requests, args.retry_s, args.fail_fast_s)}
    for name, times in runs.items():
        print(f"{name:40s} " + "  ".join(f"{t:5.2f} s" for t in times) + f"   total {sum(times):6.2f} s")
    before, after = (sum(t) for t in runs.values())
    print(f"time to 503 over {args.requests} requests: {before / after:.1f}x less with the window")


if __name__ == "__main__":
    main()
