"""The embedding cache with the real MiniLM: hits on the second call, persistence, model ids kept apart."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from llmship.knowledge import Embedder
from llmship.knowledge.cache import EmbeddingCache, embed_with_cache


@pytest.fixture(scope="module")
def embedder():
    return Embedder.load(threads=1, batch_size=8)


def by_hash(texts):
    return {hashlib.sha256(t.encode()).hexdigest(): t for t in texts}


TEXTS = by_hash([f"Vellmark fact number {i}: the ferry leaves Carrow Bay at {6 + i % 10} o'clock." for i in range(9)])


def test_second_call_is_all_hits_and_vectors_match(embedder, tmp_path):
    with EmbeddingCache(tmp_path / "emb.sqlite") as cache:
        first, stats = embed_with_cache(embedder, TEXTS, 4, cache=cache)
        assert stats == {"hits": 0, "misses": 9, "embedded": 9}
        second, stats = embed_with_cache(embedder, TEXTS, 4, cache=cache)
        assert stats == {"hits": 9, "misses": 0, "embedded": 0}
        assert list(first) == list(TEXTS) == list(second)
        for h in TEXTS:
            assert second[h].dtype == np.float32 and second[h].shape == (384,)
            np.testing.assert_array_equal(first[h], second[h])
        direct = embedder.embed(list(TEXTS.values())).vectors
        np.testing.assert_allclose(np.stack(list(second.values())), direct, atol=1e-5)
        # one new text: only it is embedded
        more = {**TEXTS, **by_hash(["A brand new sentence about Rosk puffins."])}
        _, stats = embed_with_cache(embedder, more, 4, cache=cache)
        assert stats == {"hits": 9, "misses": 1, "embedded": 1}
        assert cache.count(embedder.model_id) == 10


def test_reopen_keeps_vectors_and_other_models_miss(tmp_path):
    path = tmp_path / "knowledge" / "emb.sqlite"
    rng = np.random.default_rng(0)
    vectors = {f"h{i}": rng.standard_normal(384).astype(np.float32) for i in range(1200)}  # > one IN batch
    with EmbeddingCache(path) as cache:
        assert cache.put_many("model-a", vectors) == 1200
    with EmbeddingCache(path) as cache:
        got = cache.get_many("model-a", list(vectors) + ["absent"])
        assert set(got) == set(vectors)
        for h, v in vectors.items():
            np.testing.assert_array_equal(got[h], v)
        assert cache.get_many("model-b", list(vectors)) == {}
        cache.put_many("model-a", [("h0", np.ones(3))])  # replace, other dimension
        np.testing.assert_array_equal(cache.get_many("model-a", ["h0"])["h0"], np.ones(3, dtype=np.float32))
        assert cache.count() == 1200
        assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class _Named:
    """The real embedder under another model id (a different model must not reuse cached vectors)."""

    def __init__(self, inner, model_id):
        self.inner, self.model_id = inner, model_id

    def embed(self, texts):
        return self.inner.embed(texts)


def test_different_model_id_misses(embedder, tmp_path):
    with EmbeddingCache(tmp_path / "emb.sqlite") as cache:
        embed_with_cache(embedder, TEXTS, cache=cache)
        _, stats = embed_with_cache(_Named(embedder, "other-model"), TEXTS, cache=cache)
        assert stats == {"hits": 0, "misses": 9, "embedded": 9}
        assert cache.count() == 18
