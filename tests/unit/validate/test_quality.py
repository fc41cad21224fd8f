"""Perplexity, checked against an independent computation (the smoke prompts run on vLLM: test_engine_check)."""

from __future__ import annotations

import math

import pytest
import torch

from llmship.validate.quality import perplexity

TEXT = ("The simplest loaf needs only four ingredients. Flour provides the structure, water wakes the "
        "yeast, and salt brings out the flavour.")


@pytest.fixture(scope="module")
def reference_nll(tiny_built):
    """Mean next-token NLL from one forward pass, computed here with log_softmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_built.folder))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_built.folder), dtype=torch.float32).eval()
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], dim=-1)
    nll = -logprobs.gather(1, ids[0, 1:].unsqueeze(1)).mean()
    return float(nll), ids.shape[1]


def test_perplexity_matches_single_forward_pass(tiny_built, reference_nll):
    nll, length = reference_nll
    report = perplexity(tiny_built.folder, TEXT, window=512, stride=256)
    assert length < 512
    assert math.isfinite(report.perplexity)
    assert report.perplexity > 1.0
    assert report.tokens == length - 1
    assert report.perplexity == pytest.approx(math.exp(nll), rel=1e-4)
    assert (report.window, report.stride) == (512, 256)


def test_strided_perplexity_scores_every_token_once(tiny_built, reference_nll):
    _, length = reference_nll
    report = perplexity(tiny_built.folder, TEXT, window=8, stride=4)
    assert report.tokens == length - 1
    assert math.isfinite(report.perplexity) and report.perplexity > 1.0


def test_perplexity_max_tokens_truncates(tiny_built):
    report = perplexity(tiny_built.folder, TEXT, window=512, max_tokens=10)
    assert report.tokens == 9
