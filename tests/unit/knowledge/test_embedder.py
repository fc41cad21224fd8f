"""The real packaged MiniLM: shape, normalisation, meaning, token counts, and the inputs it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from llmship.errors import ContextLengthExceeded, InvalidRequest, SourceError
from llmship.knowledge import DEFAULT_MODEL_ID, Embedder, EmbedderSettings


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load(threads=1, batch_size=4)


def test_vectors_are_unit_length_float32_rows_in_input_order(embedder):
    texts = ["short", "a somewhat longer sentence about rivers and the sea", "mid length text here"] * 3
    batch = embedder.embed(texts)
    assert embedder.model_id == DEFAULT_MODEL_ID
    assert embedder.dimensions == 384
    assert batch.vectors.shape == (9, 384) and batch.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch.vectors, axis=1), 1.0, atol=1e-5)
    # batching by length (batch_size=4 over 9 texts) must not move rows: repeats give identical vectors
    np.testing.assert_allclose(batch.vectors[:3], batch.vectors[3:6], atol=1e-6)
    np.testing.assert_allclose(embedder.embed([texts[1]]).vectors[0], batch.vectors[1], atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    v = embedder.embed(["The cat is sleeping on the sofa.", "A cat naps on the couch.",
                        "Interest rates rose by half a percent."]).vectors
    paraphrase, unrelated = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert paraphrase > 0.7
    assert unrelated < 0.3
    assert paraphrase > unrelated + 0.4


def test_token_counts_are_word_pieces_with_special_tokens(embedder):
    batch = embedder.embed(["hello world", "hello", "unbelievably"])
    assert batch.token_counts == [4, 3, len(embedder._tokenizer.tokenize("unbelievably")) + 2]
    assert batch.prompt_tokens == sum(batch.token_counts)
    assert embedder.count_tokens(["hello world"]) == [4]


def test_input_at_the_limit_is_embedded_and_one_over_is_refused_by_index(embedder):
    assert embedder.max_input_tokens == 256  # sentence-transformers' max_seq_length for MiniLM
    fits = " ".join(["word"] * (embedder.max_input_tokens - 2))
    assert embedder.embed([fits]).token_counts == [embedder.max_input_tokens]
    with pytest.raises(ContextLengthExceeded, match=r"input\[1\] has 257 tokens.*at most 256") as err:
        embedder.embed(["fine", fits + " word"])
    assert err.value.status == 400 and err.value.code == "context_length_exceeded" and err.value.param == "input"


def test_empty_string_is_refused_and_empty_list_is_empty(embedder):
    with pytest.raises(InvalidRequest, match=r"input\[2\] is an empty string") as err:
        embedder.embed(["a", "b", ""])
    assert err.value.status == 400 and err.value.param == "input"
    empty = embedder.embed([])
    assert empty.vectors.shape == (0, 384) and empty.token_counts == []


def test_a_folder_that_is_not_a_model_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="not an embedding model folder"):
        Embedder.load(tmp_path)


def test_settings_come_from_the_environment():
    settings = EmbedderSettings.from_env({"LLMSHIP_EMBED_THREADS": "2", "LLMSHIP_EMBED_BATCH_SIZE": "8",
                                          "LLMSHIP_EMBED_MODEL_ID": "minilm", "UNRELATED": "x"})
    assert (settings.threads, settings.batch_size, settings.model_id, settings.model_path) == (2, 8, "minilm", None)
    assert EmbedderSettings.from_env({}).threads == 1
