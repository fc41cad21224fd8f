"""The keyword side (``llmship.knowledge.retrieval.keywords``): query planning on statistics the test writes, the
in-memory BM25 index against hand-computed scores, and its background cache."""

from __future__ import annotations

import math
import threading

import pytest

from llmship.knowledge.retrieval.keywords import KeywordIndex, KeywordIndexCache, TermStats, analyse, select_terms

CHUNKS = ["the cat sat on the mat", "the dog sat", "a cat and a dog", "zebra stripes", "the cat"]


def test_idf_is_lucenes_bm25_idf():
    stats = TermStats(CHUNKS)
    assert stats.chunks == 5 and stats.df["cat"] == 3 and stats.df["zebra"] == 1
    assert stats.idf("cat") == pytest.approx(math.log(1 + (5 - 3 + 0.5) / (3 + 0.5)))
    assert stats.idf("zebra") > stats.idf("dog") > stats.idf("cat")


def test_stop_words_and_words_no_chunk_holds_are_dropped():
    stats = TermStats(CHUNKS)
    assert select_terms("What did the cat and the unicorn do?", stats) == ["cat"]
    assert select_terms("the of what", None) == ["the", "of", "what"]  # nothing but stop words: kept


def test_the_cap_keeps_the_rarest_terms_and_without_statistics_the_first():
    stats = TermStats(CHUNKS)
    assert select_terms("cat dog zebra stripes mat", stats, cap=2) == ["zebra", "stripes"]
    assert select_terms("cat dog zebra stripes mat", None, cap=2) == ["cat", "dog"]


def test_terms_in_too_many_chunks_are_dropped_unless_nothing_rarer_is_left():
    stats = TermStats(CHUNKS)
    assert select_terms("cat zebra", stats, max_df=0.5) == ["zebra"]  # cat: 3 of 5 chunks
    assert select_terms("cat sat", stats, max_df=0.3) == ["cat", "sat"]  # both common: both kept
    assert select_terms("cat zebra", stats, max_df=1.0) == ["cat", "zebra"]


def _rows(texts: list[str]) -> list[dict]:
    return [{"id": f"c{i}", "text": t} for i, t in enumerate(texts)]


def test_the_index_holds_stemmed_words_without_stop_words():
    assert analyse("The stations were designed; a Station!") == ["station", "design", "station"]


def test_the_index_scores_lucenes_bm25():
    """Lucene's BM25 (k1 1.5, b 0.75; Lucene leaves out the constant factor k1 + 1) on a corpus small enough to
    score by hand."""
    texts = ["cat sat on the mat", "dog sat", "cat cat and dog", "zebra stripes", "cat"]
    index = KeywordIndex(_rows(texts))
    tokens = [analyse(t) for t in texts]  # [cat sat mat] [dog sat] [cat cat dog] [zebra stripe] [cat]
    avgdl = sum(map(len, tokens)) / len(tokens)

    def bm25(term: str, doc: list[str]) -> float:
        df = sum(term in d for d in tokens)
        idf = math.log(1 + (len(tokens) - df + 0.5) / (df + 0.5))
        tf = doc.count(term)
        return idf * tf / (tf + 1.5 * (0.25 + 0.75 * len(doc) / avgdl))

    found = index.search("cats and dogs", 10)
    expected = {f"c{i}": bm25("cat", d) + bm25("dog", d) for i, d in enumerate(tokens)}
    expected = {k: v for k, v in expected.items() if v > 0}
    assert [cid for cid, _ in found] == sorted(expected, key=lambda k: -expected[k])
    for cid, score in found:
        assert score == pytest.approx(expected[cid], rel=1e-5)
    assert index.search("Zebras?", 1) == [("c3", pytest.approx(bm25("zebra", tokens[3]), rel=1e-5))]


def test_words_no_chunk_holds_and_an_empty_corpus_find_nothing():
    assert KeywordIndex(_rows(["cat sat"])).search("unicorn", 5) == []
    empty = KeywordIndex([])
    assert empty.search("cat", 5) == [] and empty.stats.chunks == 0


def test_the_cache_builds_in_the_background_and_rebuilds_after_invalidate():
    texts = [["cat sat"]]
    release = threading.Event()

    def load():
        release.wait(10)
        return _rows(texts[0])

    cache = KeywordIndexCache(load)
    assert cache.get() is None  # building: a search uses the graph's full-text index meanwhile
    release.set()
    assert [cid for cid, _ in cache.get(wait=True).search("cat", 5)] == ["c0"]
    texts[0] = ["dog", "cat and dog"]
    cache.invalidate()
    assert [cid for cid, _ in cache.get(wait=True).search("cat", 5)] == ["c1"]


def test_a_load_that_fails_leaves_no_index_and_is_tried_again():
    calls = []

    def load():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("graph down\nmore")
        return _rows(["cat"])

    cache = KeywordIndexCache(load)
    assert cache.get(wait=True) is None and cache.error == "graph down"
    assert cache.get(wait=True) is not None and cache.error is None and len(calls) == 2


def test_the_index_plans_its_query_on_stems():
    """A query word no chunk holds as such still counts when its stem is there; stems no chunk holds go, and the
    cap keeps the rarest."""
    index = KeywordIndex(_rows(["the stations", "a station and a dog", "dog", "dog days"]))
    assert index.terms("Which stations? unicorns, dogs") == ["station", "dog"]
    assert index.terms("stations dogs", cap=1) == ["station"]
    assert index.terms("the of") == []  # only stop words, and no chunk holds them as terms
