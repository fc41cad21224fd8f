"""embedding_refresh as plain functions: folder → chunks → embed what changed → graph, converging on re-runs.

The pipeline (``pipelines/embedding_refresh.py``) calls these one step at a
time; ``run_embedding_refresh`` calls them in a row (tests, the benchmark).

Why this order makes a killed run safe to repeat: a document's ``hash`` is the
*last* thing written for it, after its chunks (with embeddings) are upserted and
its stale chunks deleted. A run that dies half-way leaves those documents with
their old (or no) hash, so the next plan picks them up again; everything else
is a ``MERGE`` on a constrained key, so repeating a write changes nothing.
Embeddings go through a persistent cache keyed by (model, chunk hash), which is
also how the embed step hands vectors to the write step without shipping
megabytes of floats through the artifact store.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmship.knowledge.cache import EmbeddingCache, default_cache_path, embed_with_cache
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.graphstore import cypher
from llmship.knowledge.graphstore.graph import GraphStore, graph_job
from llmship.knowledge.ingest.chunking import Chunk, chunk_documents
from llmship.knowledge.ingest.documents import Document, SkippedFile, load_documents
from llmship.knowledge.ingest.refresh import RefreshPlan, plan_refresh
from llmship.paths import REPO_ROOT

log = logging.getLogger(__name__)
VERSION_KEY = "embedding_refresh_version"  # the marker a retriever watches to notice a new refresh
JOB = "embedding_refresh"
#: ``on_batch(stage, done, total)``: called after each committed write batch of ``apply_plan``; stages, in order:
#: ``chunks`` (upserted with embeddings), ``chunks_deleted``, ``documents_deleted``, ``documents`` (hashes).
BatchHook = Callable[[str, int, int], None]

_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CorpusConfig(_Strict):
    folder: str = str(REPO_ROOT / "data/corpus/docs")
    patterns: list[str] = Field(default_factory=lambda: ["*.md", "*.txt", "*.html", "*.htm"])


class ChunkingConfig(_Strict):
    max_tokens: int = Field(200, ge=16, le=256)  # MiniLM reads at most 256 tokens
    overlap_tokens: int = Field(40, ge=0)


class EmbedConfig(_Strict):
    batch_size: int = Field(64, ge=1)
    threads: int = Field(1, ge=1)  # one torch thread per process is the fastest on 2 shared cores (measured)
    cache_path: str | None = None  # default: LLMSHIP_HOME/knowledge/embeddings.sqlite


class ScheduleConfig(_Strict):
    """A cron schedule, applied by ``python -m pipelines.schedule`` (``make schedule-knowledge``) when the
    orchestrator can schedule."""

    cron_expression: str

    @field_validator("cron_expression")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), got {value!r}")
        for field, (low, high) in zip(fields, _CRON_RANGES):
            if not _CRON_FIELD.match(field):
                raise ValueError(f"invalid cron field {field!r} in {value!r}")
            for number in re.findall(r"\d+", field.split("/")[0]):
                if not low <= int(number) <= high:
                    raise ValueError(f"{number} is out of range {low}-{high} in cron field {field!r}")
        return value


class Corpus(BaseModel):
    """Documents and their chunks as computed now, plus the files that could not be read."""

    documents: list[Document]
    chunks: dict[str, list[Chunk]]
    skipped: list[SkippedFile] = Field(default_factory=list)

    @property
    def chunk_count(self) -> int:
        return sum(len(c) for c in self.chunks.values())


class RefreshReport(BaseModel):
    documents: int
    skipped_files: int
    chunks: int
    plan: dict[str, int]
    embedded: int
    cache_hits: int
    chunks_written: int
    chunks_deleted: int
    documents_written: int
    documents_deleted: int
    version: str | None
    seconds: float

    def summary(self) -> str:
        return (f"{self.documents} documents ({self.skipped_files} files skipped), {self.chunks} chunks; "
                f"embedded {self.embedded} (cache hits {self.cache_hits}); wrote {self.chunks_written} chunks and "
                f"{self.documents_written} documents, deleted {self.chunks_deleted} chunks and "
                f"{self.documents_deleted} documents in {self.seconds:.1f}s")


def load_embedder(config: EmbedConfig) -> Embedder:
    return Embedder.load(threads=config.threads, batch_size=config.batch_size)


def open_cache(config: EmbedConfig) -> EmbeddingCache:
    return EmbeddingCache(Path(config.cache_path) if config.cache_path else default_cache_path())


def load_corpus(corpus: CorpusConfig, chunking: ChunkingConfig, embedder: Embedder) -> Corpus:
    """Read the folder (unreadable files skipped and counted) and chunk every document by the embedder's tokens."""
    loaded = load_documents(corpus.folder, tuple(corpus.patterns))  # warns once per skipped file
    return corpus_from_documents(loaded.documents, chunking, embedder, skipped=loaded.skipped)


def corpus_from_documents(documents: Sequence[Document], chunking: ChunkingConfig, embedder: Embedder, *,
                          skipped: Sequence[SkippedFile] = ()) -> Corpus:
    """Chunk documents that came from elsewhere than a folder (a BEIR ``corpus.jsonl``) exactly as a folder's."""
    chunks = chunk_documents(documents, embedder.count_tokens, chunking.max_tokens, chunking.overlap_tokens)
    return Corpus(documents=list(documents), chunks=chunks, skipped=list(skipped))




@graph_job(JOB)
def plan(corpus: Corpus, graph: GraphStore, *, scope: str | None = None) -> RefreshPlan:
    """The refresh plan against the graph. Chunks stored before chunks kept their span (``start_char``) count
    as changed, so their documents are rewritten once (embeddings come from the cache) and citations get spans.
    ``scope``: an id prefix (``"beir-scifact/"``); the plan then owns only the stored documents under it, so a
    collection loaded beside the main corpus neither deletes it nor is deleted by it."""
    stored = graph.chunk_hashes()
    for row in graph.read(cypher.SPANLESS_CHUNKS):
        stored[row["id"]] = ""
    documents = graph.document_hashes()
    if scope is not None:
        stored = {cid: digest for cid, digest in stored.items() if cid.startswith(scope)}
        documents = {did: digest for did, digest in documents.items() if did.startswith(scope)}
    return plan_refresh(corpus.documents, corpus.chunks, documents, stored)


def _planned_chunks(corpus: Corpus, refresh: RefreshPlan) -> list[Chunk]:
    wanted = set(refresh.chunks_to_upsert)
    return [c for doc in corpus.documents for c in corpus.chunks.get(doc.id, []) if c.id in wanted]


def embed_planned(corpus: Corpus, refresh: RefreshPlan, embedder: Embedder, cache: EmbeddingCache,
                  batch_size: int = 64) -> dict[str, int]:
    """Embed the chunks the plan upserts that the cache lacks; an unchanged corpus embeds nothing."""
    texts = {c.hash: c.text for c in _planned_chunks(corpus, refresh)}
    _, stats = embed_with_cache(embedder, texts, batch_size, cache=cache)
    return stats


def _in_batches(stage: str, items: Sequence[Any], write: Callable[[Sequence[Any]], int], size: int,
                on_batch: BatchHook | None) -> int:
    """``write`` slices of ``items`` (one transaction each), logging and reporting progress after each commit."""
    done = 0
    for start in range(0, len(items), size):
        done += write(items[start:start + size])
        log.debug("%s: %s %d/%d written", JOB, stage, done, len(items))
        if on_batch is not None:
            on_batch(stage, done, len(items))
    return done


@graph_job(JOB)
def apply_plan(corpus: Corpus, refresh: RefreshPlan, graph: GraphStore, cache: EmbeddingCache, model_id: str,
               *, version: str | None = None, on_batch: BatchHook | None = None) -> RefreshReport:
    """Write the plan: chunks with embeddings, stale chunks out, documents (with their hash) last, then the
    version marker. Each batch (``graph.settings.batch_size`` rows) is one transaction; ``on_batch`` hears of
    each commit (progress; tests kill the graph from it)."""
    started = time.perf_counter()
    graph.ensure_schema()
    chunks = _planned_chunks(corpus, refresh)
    vectors = cache.get_many(model_id, [c.hash for c in chunks])
    missing = [c.id for c in chunks if c.hash not in vectors]
    if missing:
        raise RuntimeError(f"{len(missing)} chunks have no cached embedding (first: {missing[0]}); run the embed step")
    size = graph.settings.batch_size
    rows = [{"id": c.id, "doc_id": c.doc_id, "seq": c.seq, "text": c.text, "hash": c.hash,
             "start_char": c.start_char, "end_char": c.end_char, "embedding": vectors[c.hash].tolist()}
            for c in chunks]
    written = _in_batches("chunks", rows, graph.upsert_chunks, size, on_batch)
    deleted_chunks = _in_batches("chunks_deleted", refresh.chunks_to_delete, graph.delete_chunks, size, on_batch)
    deleted_docs = _in_batches("documents_deleted", refresh.documents_to_delete, graph.delete_documents, size,
                               on_batch)
    by_id = {d.id: d for d in corpus.documents}
    docs = [{"id": d.id, "hash": d.hash, "title": d.title, "source": d.path}
            for d in (by_id[i] for i in refresh.documents_to_upsert)]
    written_docs = _in_batches("documents", docs, graph.upsert_documents, size, on_batch)
    if not refresh.is_empty:
        version = version or time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        graph.set_meta(VERSION_KEY, version)
    else:
        version = graph.get_meta(VERSION_KEY)
    return RefreshReport(
        documents=len(corpus.documents), skipped_files=len(corpus.skipped), chunks=corpus.chunk_count,
        plan=refresh.counts, embedded=0, cache_hits=0, chunks_written=written, chunks_deleted=deleted_chunks,
        documents_written=written_docs, documents_deleted=deleted_docs, version=version,
        seconds=time.perf_counter() - started)


@graph_job(JOB)
def run_embedding_refresh(corpus_config: CorpusConfig, chunking: ChunkingConfig, embed: EmbedConfig,
                          graph: GraphStore, embedder: Embedder | None = None, *,
                          version: str | None = None, on_batch: BatchHook | None = None) -> RefreshReport:
    """The whole refresh in one call (what the pipeline's steps do one by one). ``version``: the marker to
    write when anything changed (default: the UTC time). ``on_batch``: see ``apply_plan``. A graph that goes
    away is one ``GraphUnavailable`` line; re-running after it is back converges to the uninterrupted result."""
    started = time.perf_counter()
    embedder = embedder or load_embedder(embed)
    corpus = load_corpus(corpus_config, chunking, embedder)
    refresh = plan(corpus, graph)
    log.info("embedding_refresh plan: %s", refresh.summary())
    with open_cache(embed) as cache:
        stats = embed_planned(corpus, refresh, embedder, cache, embed.batch_size)
        report = apply_plan(corpus, refresh, graph, cache, embedder.model_id, version=version, on_batch=on_batch)
    return report.model_copy(update={"embedded": stats["embedded"], "cache_hits": stats["hits"],
                                     "seconds": time.perf_counter() - started})
