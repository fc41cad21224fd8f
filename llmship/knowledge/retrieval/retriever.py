"""Retrieval over the knowledge graph: dense, keyword (BM25), hybrid (score fusion) and GraphRAG, with reranking.

``Retriever(graph, embedder).retrieve(query, top_k, mode)`` (async; the neo4j driver is sync, so every graph
call and the embedding run in ``asyncio.to_thread``):

- ``dense``: the vector index (``GraphStore.vector_search``), score = (1 + cos) / 2.
- ``keyword``: BM25 over the chunk texts, from an index held in memory (``keywords.KeywordIndex``: built in the
  background from the graph once per knowledge version; the graph's full-text index, ``GraphStore.keyword_search``,
  answers until it is there), question and function words dropped first (``STOP_WORDS``: on the eval set
  recall@5 0.861 → 0.904, hybrid 0.904 → 0.913) and at most ``keywords.MAX_TERMS`` terms, the rarest in the
  index, searched (``llmship.knowledge.retrieval.keywords``).
- ``hybrid``: dense and keyword, the two searches run concurrently (``asyncio.gather``), fused by a convex
  combination of their z-scored scores, ``0.5 · z(dense) + 0.5 · z(keyword)``, a chunk one search did not return
  getting that list's lowest z (``llmship.knowledge.retrieval.fusion``; ``FUSION_WEIGHTS``). Reciprocal-rank fusion, the
  earlier default, added nothing on real data (SciFact dev, ``benchmarks/fusion_study.py``: nDCG@10 dense 0.712,
  keyword 0.698, RRF 0.731, z-score convex 0.752); the candidates measured are in docs/benchmarks.md.
- ``graph``: GraphRAG. The query's entities are found two ways — spaCy NER on the query, its mentions
  normalised like kg_update's linking forms, and a case-insensitive match of every stored entity name and
  alias against the query's word n-grams (the small NER model misses lower-case names, "ashkirk") — then
  expanded to the chunks that MENTION them (weight ``idf(e) = 1 / log2(1 + chunk_count)``, so "Vellmark", said
  everywhere, counts little) and, one hop out, to chunks mentioning their neighbours: the entities nearest the
  query's in the GCN's entity vectors (weight ``NEIGHBOUR_WEIGHT × cos × idf``; ``GRAPH_NEIGHBOURS``) or, before
  kg_update has trained it, their strongest CO_OCCURS neighbours (weight ``NEIGHBOUR_WEIGHT × w / max w × idf``). Those entity scores, already on a fixed scale, are added
  unstandardised to hybrid's fusion (weight ``FUSION_WEIGHTS["graph"]``; ``FUSION_NORM``); a query with no known
  entity is plain hybrid.

Each retriever contributes ``max(top_k * 4, 20)`` candidates. The fused candidates (the top ``top_k``, or
the whole pool when a reranker is configured) are read with ONE ``graph.chunks(ids)`` call — embeddings only
of the candidates the reranker needs them for (``needs_embedding``) — plus one read of their documents'
titles, and of their mentions for the entity-overlap reranker, concurrently.

Query embeddings are kept in an LRU cache keyed by the query text (``cache_info()``: hits, misses, size).
The entity lexicon (names and aliases → keys) is read once and re-read after ``lexicon_ttl_s`` or
``invalidate()``. An empty graph (no chunks, even without indexes) answers ``[]``; a graph that is down
raises ``GraphError`` (one line). Every statement is parameterised.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from llmship.errors import GraphError, InvalidRequest
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.graphstore import cypher
from llmship.knowledge.graphstore.graph import GraphStore
from llmship.knowledge.kg.entities import EntityExtractor, link_type, match_form, normalise, org_core
from llmship.knowledge.retrieval import fusion
from llmship.knowledge.retrieval.keywords import KeywordIndexCache, select_terms

Mode = Literal["dense", "keyword", "hybrid", "graph"]
MODES: tuple[Mode, ...] = ("dense", "keyword", "hybrid", "graph")
#: hybrid and graph: the convex fusion of z-scored dense, keyword (and graph) scores (``llmship.knowledge.retrieval.fusion``)
FUSION_NORM: dict[str, fusion.Norm] = {"dense": "zscore", "keyword": "zscore", "graph": "none"}
FUSION_WEIGHTS: dict[str, float] = {"dense": 0.5, "keyword": 0.5, "graph": 0.5}
FusionLevel = Literal["chunk", "document"]
#: graph mode's one hop out: the strongest CO_OCCURS neighbours (a Cypher read per query), the entities nearest
#: the query's in the GCN's vectors (kg_update's ``Entity.graph_embedding``, held in memory with the lexicon), or
#: both. Measured on the demo eval set (``benchmarks/retrieval_eval.py --graph-neighbours co_occurs,gcn,both``):
#: the same recall@5 (0.948 each at graph weight 0.5), gcn 37 ms mean vs 55 ms; so gcn, falling back to the
#: edges while kg_update has written no vectors.
GraphNeighbours = Literal["co_occurs", "gcn", "both"]
GRAPH_NEIGHBOURS: GraphNeighbours = "gcn"
FUSION_LEVEL: FusionLevel = "chunk"  # "document" measured +0.011 nDCG@10 on SciFact, -8.7 recall points on the demo corpus
NEIGHBOUR_WEIGHT = 0.5  # a chunk reached through one CO_OCCURS hop counts half a direct mention
MAX_NEIGHBOURS = 10  # strongest co-occurring entities followed per query
MAX_NGRAM = 6
COLLECTION_OVERSAMPLE = 4  # a collection filters the fused ranking, so each retriever is asked for 4× more
_WORD = re.compile(r"\w+")


class ScoredChunk(BaseModel):
    """One retrieved chunk. ``score`` orders the result (the mode's own score, the fused score for hybrid/graph,
    the reranker's when one ran); ``scores`` holds every component: ``dense``, ``keyword``, ``graph``, ``fused``
    (and the rerankers' names); a retriever that did not find the chunk has no entry."""

    chunk_id: str
    doc_id: str
    title: str | None = None
    text: str
    score: float
    scores: dict[str, float] = Field(default_factory=dict)
    rank: int
    start_char: int | None = None  # the chunk's span in its document's text (None for chunks written before
    end_char: int | None = None    # spans were stored)


@dataclass
class Candidate:
    """A chunk between fusion and the final cut: what rerankers see and reorder."""

    chunk_id: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    doc_id: str = ""
    title: str | None = None
    text: str = ""
    embedding: np.ndarray | None = None
    entities: frozenset[str] = frozenset()
    start_char: int | None = None
    end_char: int | None = None


@dataclass
class QueryInfo:
    """What rerankers know about the query."""

    text: str
    vector: np.ndarray
    entities: frozenset[str] = frozenset()


@dataclass
class CandidatePool:
    """What ``Retriever.candidates`` found: the query (vector and entities filled when a reranker will run)
    and the fused, filled candidates, best first."""

    query: QueryInfo
    candidates: list[Candidate]
    version: str | None = None  # the graph's knowledge (embedding_refresh) version the search saw


def needs_embedding(candidate: Candidate, needs: frozenset[str]) -> bool:
    """Whether a reranker with these ``needs`` must see this candidate's stored embedding: ``"embeddings"``
    always; ``"cosine"`` (the query-chunk cosine) only when the dense search did not already score it —
    its score is (1 + cos) / 2 (``cosine_to_query``)."""
    return "embeddings" in needs or ("cosine" in needs and "dense" not in candidate.scores)


def cosine_to_query(candidate: Candidate, query_vector: np.ndarray) -> float:
    """cos(query, chunk): from the dense score when the vector index scored it, else from the embedding."""
    if "dense" in candidate.scores:
        return 2.0 * candidate.scores["dense"] - 1.0
    emb = candidate.embedding
    if emb is None or len(emb) != len(query_vector):
        return -1.0
    denom = float(np.linalg.norm(emb) * np.linalg.norm(query_vector)) or 1.0
    return float(np.dot(emb, query_vector) / denom)


def finalize(candidates: Sequence[Candidate], top_k: int) -> list[ScoredChunk]:
    """The cut: the first ``top_k`` candidates as ranked ``ScoredChunk``s."""
    return [ScoredChunk(chunk_id=c.chunk_id, doc_id=c.doc_id, title=c.title, text=c.text, score=c.score,
                        scores=c.scores, rank=rank, start_char=c.start_char, end_char=c.end_char)
            for rank, c in enumerate(candidates[:top_k], start=1)]


class CacheInfo(BaseModel):
    hits: int
    misses: int
    size: int
    max_size: int


def doc_of_chunk(chunk_id: str) -> str:
    """A chunk id's document id (chunk ids are ``<doc id>#<seq>``)."""
    return chunk_id.rsplit("#", 1)[0]


def _tokens(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


class _EmbeddingCache:
    """A thread-safe LRU of query vectors keyed by text (``functools.lru_cache`` cannot report per-key misses
    to a caller that embeds in another thread, and must not hold the lock while embedding)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        if self.max_size <= 0:
            return
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(hits=self.hits, misses=self.misses, size=len(self._items), max_size=self.max_size)


class _Lexicon:
    """Entity names and aliases by their word-token form → (keys, idf)."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.forms: dict[str, set[str]] = defaultdict(set)
        self.idf: dict[str, float] = {}
        vectors: dict[str, np.ndarray] = {}
        for row in rows:
            key = row["key"]
            if row.get("graph_embedding"):
                vectors[key] = np.asarray(row["graph_embedding"], dtype=np.float32)
            kind = key.split(":", 1)[0]
            self.idf[key] = idf(row.get("chunk_count"))
            surfaces = {key.split(":", 1)[-1], row.get("name") or "", *(row.get("aliases") or [])}
            for surface in surfaces:
                norm = normalise(surface)
                for variant in {norm, org_core(norm) if kind == "ORG" else norm}:
                    form = " ".join(_WORD.findall(variant))
                    if len(form) >= 3 and not form.isdigit():
                        self.forms[form].add(key)
        # the GCN's entity vectors (kg_update), unit length, for graph mode's "gcn" neighbours
        dims = {len(v) for v in vectors.values()}
        self.vector_keys = sorted(vectors) if len(dims) == 1 else []
        matrix = np.stack([vectors[k] for k in self.vector_keys]) if self.vector_keys else np.zeros((0, 0))
        norms = np.linalg.norm(matrix, axis=1, keepdims=True) if self.vector_keys else np.ones((0, 1))
        self.vectors = matrix / np.where(norms == 0, 1, norms)
        self.vector_row = {k: i for i, k in enumerate(self.vector_keys)}
        self.loaded_at = time.monotonic()

    def nearest(self, keys: set[str], n: int) -> list[tuple[str, float]]:
        """The ``n`` entities (not in ``keys``) whose GCN vectors are closest (cosine > 0) to the mean of
        ``keys``' vectors, with that cosine; [] when kg_update wrote none."""
        rows = [self.vector_row[k] for k in keys if k in self.vector_row]
        if not rows:
            return []
        query = self.vectors[rows].mean(axis=0)
        sims = self.vectors @ (query / (np.linalg.norm(query) or 1.0))
        sims[rows] = -np.inf
        top = np.argsort(-sims, kind="stable")[:n]
        return [(self.vector_keys[i], float(sims[i])) for i in top if sims[i] > 0]

    def lookup_text(self, text: str) -> set[str]:
        """Keys of entities whose name/alias occurs in ``text`` as whole words (case-insensitive); a match
        inside a longer match ("vellmark" in "vellmark ferries") is dropped."""
        words = _tokens(text)
        spans: list[tuple[int, int, set[str]]] = []
        for n in range(min(MAX_NGRAM, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                keys = self.forms.get(" ".join(words[i:i + n]))
                if keys and not any(a <= i and i + n <= b for a, b, _ in spans):
                    spans.append((i, i + n, keys))
        return {key for _, _, keys in spans for key in keys}

    def lookup_form(self, surface: str, label: str) -> set[str]:
        form = " ".join(_WORD.findall(match_form(surface, link_type(label))))
        return set(self.forms.get(form, ()))


def idf(chunk_count: Any) -> float:
    """An entity's weight: 1 for one chunk, falling with the number of chunks mentioning it."""
    return 1.0 / math.log2(1.0 + max(1, int(chunk_count or 1)))


class Retriever:
    """Dense / keyword / hybrid / graph retrieval over a ``GraphStore`` (see the module docstring).

    ``extractor``: the spaCy NER for graph mode (None: a default ``EntityExtractor``, loaded on the first graph
    query). ``reranker``: applied to the fused pool before the cut (``"default"``: ``rerank.DEFAULT_RERANKER``,
    the best measured on the eval set; None: no reranking). ``keyword_index``: another retriever's, when two
    retrievers read one graph (an evaluation's scoring and timing pair): the BM25 index is built once for both."""

    def __init__(self, graph: GraphStore, embedder: Embedder, extractor: EntityExtractor | None = None, *,
                 cache_size: int = 1024, reranker: Any = "default", lexicon_ttl_s: float = 60.0,
                 version_poll_s: float = 2.0, fusion_weights: Mapping[str, float] | None = None,
                 fusion_level: FusionLevel = FUSION_LEVEL,
                 graph_neighbours: GraphNeighbours = GRAPH_NEIGHBOURS,
                 keyword_index: KeywordIndexCache | None = None) -> None:
        from llmship.knowledge.retrieval import rerank

        self.graph = graph
        self.embedder = embedder
        self._extractor = extractor
        self._cache = _EmbeddingCache(cache_size)
        self.reranker = rerank.default_reranker() if reranker == "default" else reranker
        self.fusion_weights = dict(FUSION_WEIGHTS if fusion_weights is None else fusion_weights)
        self.fusion_level = fusion_level
        self.graph_neighbours = graph_neighbours
        self.lexicon_ttl_s = lexicon_ttl_s
        self._lexicon: _Lexicon | None = None
        self._lexicon_lock = threading.Lock()
        self._ner_lock = threading.Lock()  # a spaCy pipeline is not safe to share between threads
        self.version_poll_s = version_poll_s
        self._version: str | None = None
        self._version_read_at = -math.inf
        self.keyword_index = (keyword_index if keyword_index is not None
                              else KeywordIndexCache(lambda: self.graph.read(cypher.CHUNK_TEXTS)))

    # ---- caches -------------------------------------------------------------------------------------------------

    def cache_info(self) -> CacheInfo:
        return self._cache.info()

    def invalidate(self) -> None:
        """Forget the entity lexicon and the keyword index (after a refresh or kg_update); query vectors stay
        valid (same model)."""
        self._lexicon = None
        self.keyword_index.invalidate()

    def knowledge_version(self) -> str | None:
        """The graph's embedding_refresh version marker, read at most every ``version_poll_s``. When it
        changes (a refresh or kg_update ran while we serve), the entity lexicon is dropped, so the next
        query sees the new entities; chunks and vectors are read live anyway. A graph that is down keeps
        the last version known (the search itself reports the outage).

        The first read only learns the version: what this retriever holds by then was built from the graph as it
        is (an evaluation builds the keyword index, or takes another retriever's, and queries at once), and
        dropping it there sent the first queries of every evaluation to the full-text fallback while it was
        built again."""
        from llmship.knowledge.ingest.embedding_refresh import VERSION_KEY

        if self._version_due():
            try:
                version = self.graph.get_meta(VERSION_KEY)
            except GraphError:
                return self._version
            first = self._version_read_at == -math.inf
            self._version_read_at = time.monotonic()
            version = None if version is None else str(version)
            if version != self._version:
                self._version = version
                if not first:
                    self.invalidate()
        return self._version

    def _version_due(self) -> bool:
        return time.monotonic() - self._version_read_at >= self.version_poll_s

    @property
    def extractor(self) -> EntityExtractor:
        if self._extractor is None:
            self._extractor = EntityExtractor()
        return self._extractor

    def embed_query(self, query: str) -> np.ndarray:
        vector = self._cache.get(query)
        if vector is None:
            vector = self.embedder.embed([query]).vectors[0]
            self._cache.put(query, vector)
        return vector

    def _lexicon_now(self) -> _Lexicon:
        with self._lexicon_lock:
            lex = self._lexicon
            if lex is None or time.monotonic() - lex.loaded_at > self.lexicon_ttl_s:
                lex = self._lexicon = _Lexicon(self.graph.read(cypher.ENTITY_LEXICON))
            return lex

    # ---- the retrievers (sync; run in threads) ------------------------------------------------------------------

    def query_entities(self, query: str) -> set[str]:
        """Keys of the stored entities the query names (NER forms + name/alias n-gram matches)."""
        lex = self._lexicon_now()
        keys = lex.lookup_text(query)
        if lex.forms:
            with self._ner_lock:
                mentions = self.extractor.extract([("query", query)])
            for mention in mentions:
                keys |= lex.lookup_form(mention.text, mention.label)
        return keys

    def _dense(self, query: str, n: int) -> list[tuple[str, float]]:
        return self.graph.vector_search(self.embed_query(query), n)

    def keyword_terms(self, query: str) -> list[str]:
        """The word terms a search of the graph's full-text index sends (``keywords.select_terms``: stop words out,
        the rarest by the chunks' IDF, at most ``keywords.MAX_TERMS``); the in-memory index plans the same way on
        stems (``KeywordIndex.terms``)."""
        index = self.keyword_index.get()
        return select_terms(query, index.stats if index is not None else None)

    def _keyword(self, query: str, n: int) -> list[tuple[str, float]]:
        """BM25 from the in-memory index; the graph's full-text index while that is being built."""
        index = self.keyword_index.get()
        if index is not None:
            return index.search(query, n)
        return self.graph.keyword_search(" ".join(select_terms(query)), n)

    def _graph(self, query: str, n: int) -> tuple[list[tuple[str, float]], set[str]]:
        keys = self.query_entities(query)
        if not keys:
            return [], keys
        lex = self._lexicon_now()
        ordered = sorted(keys)
        scores: dict[str, float] = defaultdict(float)
        for row in self.graph.read(cypher.DIRECT_MENTIONS, keys=ordered):
            scores[row["id"]] += sum(lex.idf.get(k, 1.0) for k in row["keys"])
        weight: dict[str, float] = {}
        hop = self.graph_neighbours if lex.vector_keys else "co_occurs"  # no GCN vectors yet: the edges
        if hop in ("co_occurs", "both"):
            neighbours = self.graph.read(cypher.NEIGHBOURS, keys=ordered, n=MAX_NEIGHBOURS)
            if neighbours:
                top = max(float(r["weight"] or 0) for r in neighbours) or 1.0
                weight = {r["key"]: NEIGHBOUR_WEIGHT * float(r["weight"] or 0) / top * idf(r["chunk_count"])
                          for r in neighbours}
        if hop in ("gcn", "both"):
            for key, sim in lex.nearest(keys, MAX_NEIGHBOURS):
                weight[key] = max(weight.get(key, 0.0), NEIGHBOUR_WEIGHT * sim * lex.idf[key])
        if weight:
            for row in self.graph.read(cypher.DIRECT_MENTIONS, keys=sorted(weight)):
                scores[row["id"]] += sum(weight[k] for k in row["keys"])
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return ranked, keys

    def _is_empty(self) -> bool:
        return not self.graph.read(cypher.ANY_CHUNK)

    # ---- retrieve -----------------------------------------------------------------------------------------------

    async def retrieve(self, query: str, top_k: int = 5, mode: Mode = "hybrid", *,
                       collection: str | None = None) -> list[ScoredChunk]:
        """The ``top_k`` best chunks for ``query``, best first (see the module docstring): ``candidates``,
        then this retriever's own reranker, then the cut."""
        needs: frozenset[str] = (getattr(self.reranker, "needs", frozenset()) if self.reranker is not None
                                 else frozenset())
        pool = await self.candidates(query, top_k, mode, collection=collection, pool=self.reranker is not None,
                                     needs=needs)
        found = pool.candidates
        if self.reranker is not None and found:
            found = self.reranker.rerank(pool.query, found)
        return finalize(found, top_k)

    async def candidates(self, query: str, top_k: int = 5, mode: Mode = "hybrid", *, collection: str | None = None,
                         pool: bool = False, needs: frozenset[str] = frozenset()) -> CandidatePool:
        """Search and fuse, then read the candidates' text, document and title (and, with ``needs`` containing
        ``"entities"``, their MENTIONS). ``pool``: keep the whole fused pool for a reranker (local or another
        service) and fill ``query`` with the query's vector (and entities); otherwise the top ``top_k``.
        ``collection``: only chunks of documents under that folder (``<collection>/...``)."""
        if mode not in MODES:
            raise InvalidRequest(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}", param="mode")
        if top_k < 1:
            raise InvalidRequest("top_k must be >= 1", param="top_k")
        if not query or not query.strip():
            raise InvalidRequest("the query is empty", param="query")
        # A collection is a filter after the search, so ask each retriever for more.
        n = max(top_k * 4, 20) * (COLLECTION_OVERSAMPLE if collection else 1)
        # a graph read only when the marker is due; otherwise the known version, without a thread hop
        version = await asyncio.to_thread(self.knowledge_version) if self._version_due() else self._version
        empty = CandidatePool(query=QueryInfo(text=query, vector=np.zeros(0, dtype=np.float32)), candidates=[],
                              version=version)
        try:
            rankings, components, query_keys = await self._search(query, n, mode)
        except GraphError:
            if await asyncio.to_thread(self._is_empty):  # no chunks yet (indexes may not even exist)
                return empty
            raise
        if mode in ("dense", "keyword"):
            fused = {cid: components[mode][cid] for cid in rankings[mode]}
        else:
            fused = (fusion.by_document(components, self.fusion_weights, doc_of_chunk, FUSION_NORM)
                     if self.fusion_level == "document" else
                     fusion.convex(components, self.fusion_weights, FUSION_NORM))
        order = sorted(fused, key=lambda cid: (-fused[cid], cid))
        if collection:
            prefix = collection.strip("/") + "/"
            order = [cid for cid in order if cid.startswith(prefix)]  # chunk id = "<doc id>#<seq>"
        order = order if pool else order[:top_k]
        if not order:
            return empty
        found = [Candidate(chunk_id=cid, score=fused[cid],
                           scores={name: comp[cid] for name, comp in components.items() if cid in comp}
                           | ({"fused": fused[cid]} if mode in ("hybrid", "graph") else {}))
                 for cid in order]
        found = await self._fill(found, needs)
        info = empty.query
        if pool:
            if mode != "graph" and "entities" in needs:
                query_keys = await asyncio.to_thread(self.query_entities, query)
            info = QueryInfo(text=query, vector=await asyncio.to_thread(self.embed_query, query),
                             entities=frozenset(query_keys))
        return CandidatePool(query=info, candidates=found, version=version)

    async def _search(self, query: str, n: int, mode: Mode
                      ) -> tuple[dict[str, list[str]], dict[str, dict[str, float]], set[str]]:
        jobs: dict[str, Any] = {}
        if mode in ("dense", "hybrid", "graph"):
            jobs["dense"] = asyncio.to_thread(self._dense, query, n)
        if mode in ("keyword", "hybrid", "graph"):
            jobs["keyword"] = asyncio.to_thread(self._keyword, query, n)
        if mode == "graph":
            jobs["graph"] = asyncio.to_thread(self._graph, query, n)
        results = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
        query_keys: set[str] = set()
        if "graph" in results:
            results["graph"], query_keys = results["graph"]
        rankings = {name: [cid for cid, _ in hits] for name, hits in results.items()}
        components = {name: dict(hits) for name, hits in results.items()}
        return rankings, components, query_keys

    async def _fill(self, candidates: list[Candidate], needs: frozenset[str]) -> list[Candidate]:
        """Text, document, title (embeddings and mentions as ``needs`` says) of the candidates; ids no longer in
        the graph are dropped."""
        need_entities = "entities" in needs
        ids = [c.chunk_id for c in candidates]
        chunks = await asyncio.to_thread(self.graph.chunks, ids, [c.chunk_id for c in candidates
                                                                  if needs_embedding(c, needs)])
        by_id = {row["id"]: row for row in chunks}
        doc_ids = sorted({row["doc_id"] for row in chunks})
        reads = [asyncio.to_thread(self.graph.read, cypher.TITLES, ids=doc_ids)]
        if need_entities:
            reads.append(asyncio.to_thread(self.graph.read, cypher.CHUNK_MENTIONS, ids=ids))
        results = await asyncio.gather(*reads)
        titles = {r["id"]: r["title"] for r in results[0]}
        mentions = {r["id"]: frozenset(r["keys"]) for r in results[1]} if need_entities else {}
        out = []
        for cand in candidates:
            row = by_id.get(cand.chunk_id)
            if row is None:
                continue
            cand.doc_id, cand.text, cand.title = row["doc_id"], row["text"], titles.get(row["doc_id"])
            emb = row.get("embedding")
            cand.embedding = None if emb is None else np.asarray(emb, dtype=np.float32)
            cand.entities = mentions.get(cand.chunk_id, frozenset())
            cand.start_char, cand.end_char = row.get("start_char"), row.get("end_char")
            out.append(cand)
        return out
