"""Chunking with the real MiniLM tokenizer: the limit holds, overlap is there, offsets point at the text."""

from __future__ import annotations

import itertools

import pytest

from llmship.errors import LlmshipError
from llmship.knowledge import Embedder
from llmship.knowledge.ingest.chunking import CachedCounter, chunk_document, chunk_documents, sentence_spans
from llmship.knowledge.ingest.documents import load_documents, parse_document
from tests.conftest import REPO

CORPUS = REPO / "data" / "corpus" / "docs"


@pytest.fixture(scope="module")
def count_tokens():
    return Embedder.load(threads=1).count_tokens


@pytest.fixture(scope="module")
def corpus():
    return load_documents(CORPUS).documents


def doc(text: str, doc_id: str = "t.md"):
    return parse_document(doc_id, text.encode())


def test_sentences_and_paragraphs():
    text = "# Title\n\nOne. Two? Three!\n- item a\n- item b\n\nLast “quoted.” End"
    spans = [(text[a:b], para) for a, b, para in sentence_spans(text)]
    assert spans == [("# Title", 0), ("One.", 1), ("Two?", 1), ("Three!", 1), ("- item a", 1), ("- item b", 1),
                     ("Last “quoted.”", 2), ("End", 2)]


def test_short_document_is_one_chunk(count_tokens):
    d = doc("# Kelloch\n\nKelloch Head Light was lit on 1 September 1834.")
    [chunk] = chunk_document(d, count_tokens)
    assert chunk.id == "t.md#0" and chunk.seq == 0 and chunk.text == d.text
    assert (chunk.start_char, chunk.end_char) == (0, len(d.text))
    assert chunk.token_count == count_tokens([d.text])[0]
    assert chunk_document(doc(""), count_tokens) == []


def test_corpus_chunks_fit_the_embedder_and_point_at_their_text(count_tokens, corpus):
    chunks = chunk_documents(corpus, count_tokens, max_tokens=200, overlap_tokens=40)
    texts = {d.id: d.text for d in corpus}
    all_chunks = [c for cs in chunks.values() for c in cs]
    assert len(all_chunks) > len(corpus)
    real = count_tokens([c.text for c in all_chunks])
    assert max(real) <= 200  # the embedder takes 256
    assert [c.token_count for c in all_chunks] == real
    for doc_id, cs in chunks.items():
        assert [c.seq for c in cs] == list(range(len(cs)))
        assert all(c.id == f"{doc_id}#{c.seq}" for c in cs)
        assert all(texts[doc_id][c.start_char:c.end_char] == c.text for c in cs)
        assert cs[0].start_char == 0 and cs[-1].end_char == len(texts[doc_id])
        # nothing is lost: consecutive chunks touch or overlap
        assert all(b.start_char <= a.end_char + 2 for a, b in itertools.pairwise(cs))


def test_overlap_carries_tail_sentences(count_tokens, corpus):
    long_doc = next(d for d in corpus if d.id == "history/timeline-of-vellmark.md")
    chunks = chunk_document(long_doc, count_tokens, max_tokens=120, overlap_tokens=40)
    assert len(chunks) > 10
    overlapping = [(a, b) for a, b in itertools.pairwise(chunks) if b.start_char < a.end_char]
    assert len(overlapping) >= len(chunks) // 2
    for a, b in overlapping:
        shared = long_doc.text[b.start_char:a.end_char]
        assert a.text.endswith(shared) and b.text.startswith(shared)
        assert count_tokens([shared])[0] - 2 <= 40
        assert b.end_char > a.end_char  # every chunk brings something new
    assert all(c.token_count <= 120 for c in chunks)


def test_a_huge_sentence_falls_back_to_word_windows(count_tokens):
    words = " ".join(f"word{i}" for i in range(600))
    d = doc(f"Intro sentence.\n\n{words} end.\n\nhttps://x.example/{'a' * 3000}")
    chunks = chunk_document(d, count_tokens, max_tokens=64, overlap_tokens=8)
    assert max(count_tokens([c.text for c in chunks])) <= 64
    assert all(d.text[c.start_char:c.end_char] == c.text for c in chunks)
    assert chunks[-1].end_char == len(d.text)


def test_deterministic_and_batched(count_tokens, corpus):
    sample = corpus[:40]
    counter = CachedCounter(count_tokens)
    once = chunk_documents(sample, counter)
    calls = counter.calls
    assert calls <= 2 + len(sample)  # all sentences in one call, then one check per document at most
    assert chunk_documents(sample, counter) == once and counter.calls == calls  # memo: no new tokenizer calls
    assert {d.id: chunk_document(d, count_tokens) for d in sample} == once
    assert [c.hash for c in once[sample[0].id]] == [c.hash for c in chunk_document(sample[0], count_tokens)]


def test_a_tokenizer_that_is_not_additive_still_gets_chunks_under_the_limit():
    def count(texts):  # every space costs a token: sums of sentence counts underestimate the chunk
        return [len(t.split()) + t.count(" ") + 2 for t in texts]

    d = doc(" ".join(f"Sentence number {i} is here." for i in range(80)))
    chunks = chunk_document(d, count, max_tokens=50, overlap_tokens=10)
    assert max(count([c.text for c in chunks])) <= 50


def test_bad_settings_are_refused(count_tokens):
    with pytest.raises(LlmshipError):
        chunk_document(doc("text"), count_tokens, max_tokens=100, overlap_tokens=60)
