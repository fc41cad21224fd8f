"""The keyword side of retrieval: which of the query's words go to the full-text index.

Both full-text procedures OR every term they are given, so a real-length query (a claim, a pasted paragraph)
asked with every distinct word costs one posting-list walk per word — the common ones are the longest — and
on Neo4j a query over 1,024 terms fails outright (Lucene's ``maxClauseCount``). So the query side does what a
search engine's query planner would:

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
from collections.abc import Iterable

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


def words(text: str) -> list[str]:
    """Distinct lower-cased word terms in order of first appearance (what the analyzers index)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))


class TermStats:
    """Document frequencies of word terms over the indexed chunks, for the query side's IDF."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.df: Counter[str] = Counter()
        self.chunks = 0
        for text in texts:
            self.chunks += 1
            self.df.update(set(words(text or "")))

    def idf(self, term: str) -> float:
        """BM25's (Lucene's) IDF, ``ln(1 + (N - df + 0.5) / (df + 0.5))``."""
        df = self.df.get(term, 0)
        return math.log(1.0 + (self.chunks - df + 0.5) / (df + 0.5))


def select_terms(text: str, stats: TermStats | None = None, cap: int = MAX_TERMS,
                 max_df: float | None = None) -> list[str]:
    """The terms one keyword search sends, best first (see the module docstring)."""
    max_df = MAX_DF if max_df is None else max_df
    terms = words(text)
    kept = [t for t in terms if t not in STOP_WORDS] or terms
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


class TermStatsCache:
    """``TermStats`` built in a background thread from ``load()`` (an iterable of chunk texts) and dropped on
    ``invalidate()``: a search never waits for a large index's texts to be read — until they are, it uses the
    positional cut. ``get(wait=True)`` blocks until they are there (evaluations, benchmarks)."""

    def __init__(self, load) -> None:
        self._load = load
        self._stats: TermStats | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._generation = 0
        self.error: str | None = None

    def get(self, *, wait: bool = False) -> TermStats | None:
        with self._lock:
            if self._stats is None and self._thread is None:
                self._thread = threading.Thread(target=self._build, args=(self._generation,),
                                                name="keyword-term-stats", daemon=True)
                self._thread.start()
            thread, stats = self._thread, self._stats
        if stats is None and wait and thread is not None:
            thread.join()
            with self._lock:
                stats = self._stats
        return stats

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._stats, self._thread = None, None

    def _build(self, generation: int) -> None:
        try:
            stats = TermStats(self._load())
        except Exception as err:  # noqa: BLE001 - a graph that is down: keep the positional cut, try again later
            with self._lock:
                self.error = str(err).splitlines()[0] if str(err) else type(err).__name__
                if generation == self._generation:
                    self._thread = None
            return
        with self._lock:
            if generation == self._generation:
                self._stats, self.error = stats, None
