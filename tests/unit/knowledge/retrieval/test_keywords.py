"""The keyword side's query planning (``llmship.knowledge.retrieval.keywords``), on statistics the test writes."""

from __future__ import annotations

import math

import pytest

from llmship.knowledge.retrieval.keywords import TermStats, select_terms

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
