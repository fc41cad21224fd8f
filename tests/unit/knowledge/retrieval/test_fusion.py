"""Score fusion (``llmship.knowledge.retrieval.fusion``) against hand-computed values."""

from __future__ import annotations

import math

import pytest

from llmship.knowledge.retrieval import fusion


def test_zscore_standardises_and_floors_at_the_minimum():
    scores, floor = fusion.normalise({"a": 3.0, "b": 1.0, "c": 2.0}, "zscore")
    sd = math.sqrt(2 / 3)  # population sd of 3, 1, 2
    assert scores == pytest.approx({"a": 1 / sd, "b": -1 / sd, "c": 0.0})
    assert floor == pytest.approx(-1 / sd)


def test_minmax_scales_to_the_unit_interval():
    scores, floor = fusion.normalise({"a": 10.0, "b": 5.0, "c": 7.5}, "minmax")
    assert scores == pytest.approx({"a": 1.0, "b": 0.0, "c": 0.5}) and floor == 0.0


def test_constant_scores_do_not_divide_by_zero():
    assert fusion.normalise({"a": 2.0, "b": 2.0}, "zscore")[0] == {"a": 0.0, "b": 0.0}
    assert fusion.normalise({"a": 2.0}, "minmax")[0] == {"a": 1.0}
    assert fusion.normalise({}, "zscore") == ({}, 0.0)


def test_convex_weights_each_list_and_gives_a_missing_id_the_lists_floor():
    dense = {"a": 0.9, "b": 0.8, "c": 0.7}
    keyword = {"c": 12.0, "d": 4.0}
    fused = fusion.convex({"dense": dense, "keyword": keyword}, {"dense": 0.6, "keyword": 0.4}, "minmax")
    # dense min-max: a 1, b 0.5, c 0 (floor 0); keyword: c 1, d 0 (floor 0)
    assert fused == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.4, "d": 0.0})


def test_a_confident_list_outweighs_a_flat_one_unlike_rank_fusion():
    # dense barely separates x from y; keyword puts y far above everything else: y must win, which RRF
    # (x first in one list, y first in the other) cannot tell apart
    dense = {"x": 0.81, "y": 0.80, "z": 0.50, "w": 0.49}
    keyword = {"y": 30.0, "x": 2.0, "z": 1.5, "w": 1.0}
    fused = fusion.convex({"dense": dense, "keyword": keyword}, {"dense": 0.5, "keyword": 0.5})
    assert max(fused, key=fused.get) == "y"


def test_unweighted_and_empty_components_add_nothing():
    fused = fusion.convex({"dense": {"a": 1.0, "b": 0.0}, "graph": {}, "other": {"a": 0.0, "b": 9.0}},
                          {"dense": 1.0, "graph": 1.0})
    assert fused == pytest.approx({"a": 1.0, "b": -1.0})


def test_an_unknown_normalisation_is_an_error():
    with pytest.raises(ValueError, match="unknown score normalisation 'rank'"):
        fusion.normalise({"a": 1.0}, "rank")  # type: ignore[arg-type]


def test_rrf_sums_reciprocal_ranks():
    fused = fusion.rrf({"dense": ["a", "b"], "keyword": ["b", "c"]})
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})


def test_by_document_adds_up_evidence_from_different_chunks_of_one_document():
    # d1's chunk 0 is dense's best, its chunk 1 keyword's best: d1 leads both lists once folded to documents,
    # so both its chunks rank above d2's, whose one chunk is second in both lists
    dense = {"d1#0": 0.9, "d2#0": 0.8, "d3#0": 0.1}
    keyword = {"d1#1": 9.0, "d2#0": 8.0, "d3#0": 1.0}
    fused = fusion.by_document({"dense": dense, "keyword": keyword}, {"dense": 0.5, "keyword": 0.5},
                               lambda cid: cid.split("#")[0])
    order = sorted(fused, key=lambda c: -fused[c])
    assert order[:2] in (["d1#0", "d1#1"], ["d1#1", "d1#0"]) and order[2:] == ["d2#0", "d3#0"]
    docs = fusion.convex({"dense": {"d1": 0.9, "d2": 0.8, "d3": 0.1}, "keyword": {"d1": 9.0, "d2": 8.0, "d3": 1.0}},
                         {"dense": 0.5, "keyword": 0.5})
    assert fused["d2#0"] == pytest.approx(docs["d2"], abs=1e-5)
    # chunk-level fusion would rank d2's chunk first: found by both searches, each d1 chunk by one
    chunk = fusion.convex({"dense": dense, "keyword": keyword}, {"dense": 0.5, "keyword": 0.5})
    assert max(chunk, key=chunk.get) == "d2#0"
