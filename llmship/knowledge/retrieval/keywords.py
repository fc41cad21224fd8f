"""The keyword side of retrieval: which of the query's words are searched, and where.

Where: a BM25 index over the chunk texts held in memory (``KeywordIndex``, ``bm25s``: Lucene's BM25, k1 1.5,
b 0.75, over lower-cased words, stop words out, Snowball-stemmed), built in the background from one read of the
chunks per knowledge version, beside the document frequencies the query side uses. Until it is built (a service's
first seconds, or just after a refresh changed the knowledge) the graph store's full-text index answers instead
(``GraphStore.keyword_search``, the dialect's procedure). Why not the graph's index always: on SciFact dev (5,629
chunks, 77 claims; ``benchmarks/fusion_study.py --keyword graph,memory``) it scored keyword nDCG@10 0.698 and hybrid
0.752 in 20 ms a search; the in-memory BM25 0.715 and hybrid 0.766 in 0.3 ms (the stems are most of the gain:
0.689 without them), and ArcadeDB's full-text procedure
scores every match of an OR query, which at 100k chunks of real text took 318 ms p95 (docs/benchmarks.md).
The graph stays the one store: the index is derived from it and dropped when its version marker moves.

Which words, on either path — what a search engine's query planner would do:
1. plain lower-cased word terms (``dialects.keyword_terms``: no Lucene syntax ever reaches the server);
2. question and function words dropped (``STOP_WORDS``; a query of nothing else keeps them);
3. words no indexed chunk holds dropped (they match nothing), the rest ranked by their BM25 IDF in the indexed
   chunks (``TermStats``: document frequencies counted from the chunk texts, read once per knowledge version)
   and cut at ``MAX_TERMS`` — the rarest words carry BM25's
   score, the commonest cost the most time and add the least. Without statistics yet, the first ``MAX_TERMS``
   words in query order are kept;
4. optionally (``MAX_DF`` below 1; off by default), words in more than that share of the chunks dropped when
   rarer ones are there: a long posting list is most of a real query's time. Measured (``benchmarks/rag_bench.py
   --max-df 1,0.1,0.05``, 100k chunks of real abstract text, SciFact claims): keyword p50 / p95 177 / 330 ms →
   116 / 249 (0.1) → 55 / 120 (0.05); SciFact dev nDCG@10 (``benchmarks/fusion_study.py --max-df``) hybrid
   0.752 → 0.750 → 0.742; but the demo corpus (610 chunks, where a place named in 70 chunks is still the
   question's point) loses hybrid recall@5 0.948 → 0.904 at 0.1. So the cut stays off.

One query per search, the same on both dialects.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MAX_TERMS = 32
MAX_DF = 1.0  # the largest share of chunks a term may appear in and still be sent, when rarer ones are there
_WORD = re.compile(r"\w+")

#: Question words and function words dropped from the keyword query (BM25 would otherwise reward chunks full of
#: "what", "the", "was"); a query of nothing but these keeps its words.
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have",
    "how", "i", "in", "is", "it", "its", "of", "on", "or", "the", "this", "that", "to", "was", "were", "what",
    "when", "where", "which", "who", "whom", "whose", "why", "will", "with", "s", "many", "much",
))


def _lower_words(text: str) -> list[str]:
    """Every word of ``text``, lower-cased, repeats kept: the one tokenisation both keyword paths start from."""
    return [w.lower() for w in _WORD.findall(text)]


def words(text: str) -> list[str]:
    """Distinct lower-cased word terms in order of first appearance (what the analyzers index)."""
    return list(dict.fromkeys(_lower_words(text)))


class TermStats:
    """Document frequencies of terms over the indexed chunks, for the query side's IDF: of the word terms of
    ``texts``, or of the terms each ``add`` is given (``KeywordIndex``: words and stems in one pass)."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.df: Counter[str] = Counter()
        self.chunks = 0
        for text in texts:
            self.add(_lower_words(text or ""))

    def add(self, terms: Iterable[str]) -> None:
        """Count one chunk holding ``terms`` (repeats count once)."""
        self.chunks += 1
        self.df.update(set(terms))

    def idf(self, term: str) -> float:
        """BM25's (Lucene's) IDF, ``ln(1 + (N - df + 0.5) / (df + 0.5))``."""
        df = self.df.get(term, 0)
        return math.log(1.0 + (self.chunks - df + 0.5) / (df + 0.5))


def select_terms(text: str, stats: TermStats | None = None, cap: int = MAX_TERMS,
                 max_df: float | None = None) -> list[str]:
    """The terms one keyword search sends, best first (see the module docstring)."""
    terms = words(text)
    return _plan([t for t in terms if t not in STOP_WORDS] or terms, stats, cap, max_df)


def _plan(kept: list[str], stats: TermStats | None, cap: int, max_df: float | None) -> list[str]:
    """Steps 3 and 4 of the module docstring on the query's terms, stop words already out."""
    max_df = MAX_DF if max_df is None else max_df
    if stats is not None and stats.chunks:
        kept = [t for t in kept if t in stats.df]  # a word no chunk holds matches nothing: no clause for it
        rare = [t for t in kept if stats.df[t] <= max_df * stats.chunks]
        if rare:  # the commonest words, when rarer ones are there (a query of only common words keeps them)
            kept = rare
    if len(kept) <= cap:
        return kept
    if stats is None:
        return kept[:cap]
    position = {t: i for i, t in enumerate(kept)}
    return sorted(kept, key=lambda t: (-stats.idf(t), position[t]))[:cap]


def analyse(text: str) -> list[str]:
    """The tokens the in-memory index holds for ``text``, repeats kept (BM25 counts them): lower-cased words,
    ``STOP_WORDS`` out, Snowball (English) stems — stemming measured +0.020 keyword nDCG@10 on SciFact dev."""
    return _stem([w for w in _lower_words(text) if w not in STOP_WORDS])


def _stem(terms: list[str]) -> list[str]:
    import Stemmer  # PyStemmer: the Snowball stemmers in C; one per thread, they keep a cache

    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return list(stemmer.stemWords(terms))


_local = threading.local()


class KeywordIndex:
    """What the keyword side knows of the indexed chunks, from one read of their ids and texts: the query side's
    document frequencies (``stats``) and a BM25 index over the texts in memory (``search``)."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        import bm25s

        self.ids: list[str] = []
        self.stats = TermStats()  # of word terms: what a search of the graph's full-text index plans with
        self.stem_stats = TermStats()  # of the stems this index holds: what its own searches plan with
        # one string object per distinct stem: the token lists of 100k chunks hold ~12M entries. Measured at 100k
        # chunks of abstract text: 61 MiB live after the build (the BM25 matrix 52 of it), 404 MiB at its peak
        canon: dict[str, str] = {}
        tokens: list[list[str]] = []
        for row in rows:  # one tokenisation per text feeds both statistics and the index (``analyse``'s steps)
            found = _lower_words(row.get("text") or "")
            stems = [canon.setdefault(s, s) for s in _stem([w for w in found if w not in STOP_WORDS])]
            self.ids.append(str(row["id"]))
            self.stats.add(found)
            self.stem_stats.add(stems)
            tokens.append(stems)
        self._bm25: Any = None
        if self.ids:
            self._bm25 = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
            self._bm25.index(tokens, show_progress=False)

    def terms(self, query: str, cap: int = MAX_TERMS, max_df: float | None = None) -> list[str]:
        """The stems one search over this index uses: ``select_terms``' plan on the query's stems (a stem no chunk
        holds dropped, the rarest ``cap`` kept)."""
        stems = list(dict.fromkeys(analyse(query))) or list(dict.fromkeys(_stem(words(query))))
        return _plan(stems, self.stem_stats, cap, max_df)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the ``n`` best chunks for ``query``, best first; chunks matching no term are
        left out."""
        tokens = self.terms(query)
        if self._bm25 is None or not tokens or n < 1:
            return []
        docs, scores = self._bm25.retrieve([tokens], k=min(n, len(self.ids)), show_progress=False, n_threads=0)
        return [(self.ids[int(i)], float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]


class KeywordIndexCache:
    """``KeywordIndex`` built in a background thread from ``load()`` (rows of chunk ``id`` and ``text``) and dropped
    on ``invalidate()``: a search never waits for a large index's texts to be read — until they are, the query side
    uses the positional cut and the graph's full-text index answers. ``get(wait=True)`` blocks until it is there
    (evaluations, benchmarks)."""

    def __init__(self, load: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._load = load
        self._index: KeywordIndex | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._generation = 0
        self.error: str | None = None

    def get(self, *, wait: bool = False) -> KeywordIndex | None:
        with self._lock:
            if self._index is None and self._thread is None:
                self._thread = threading.Thread(target=self._build, args=(self._generation,),
                                                name="keyword-index", daemon=True)
                self._thread.start()
            thread, index = self._thread, self._index
        if index is None and wait and thread is not None:
            thread.join()
            with self._lock:
                index = self._index
        return index

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._index, self._thread = None, None

    def _build(self, generation: int) -> None:
        try:
            index = KeywordIndex(self._load())
        except Exception as err:  # noqa: BLE001 - a graph that is down: keep the positional cut, try again later
            with self._lock:
                self.error = str(err).splitlines()[0] if str(err) else type(err).__name__
                if generation == self._generation:
                    self._thread = None
            return
        with self._lock:
            if generation == self._generation:
                self._index, self.error = index, None
