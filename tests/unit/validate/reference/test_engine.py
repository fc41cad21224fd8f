"""The shared generation loop on the PyTorch backend: determinism, batching, sampling, stops, usage."""

from __future__ import annotations

import pytest

from llmship.errors import ContextLengthExceeded, InvalidRequest
from llmship.validate.reference import Engine, SamplingParams, load_engine

TEXTS = [
    "The",
    "Flour provides the structure of bread",
    "Every morning the baker lights the oven, weighs the flour, and waits",
]


@pytest.fixture(scope="module")
def prompts(torch_engine):
    return [torch_engine.encode(t) for t in TEXTS]


def greedy(max_tokens=24, **kw) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, **kw)


def test_load_engine_reads_folder(torch_engine, tiny_built):
    assert torch_engine.name == "pytorch-float32"
    assert torch_engine.context_length == tiny_built.max_position_embeddings == 256
    assert torch_engine.tokenizer.convert_tokens_to_ids("<end_of_turn>") in torch_engine.eos_token_ids
    assert torch_engine.tokenizer.eos_token_id in torch_engine.eos_token_ids
    capped = load_engine(tiny_built.folder, "pytorch", dtype="float32", max_model_len=64)
    assert capped.context_length == 64


def test_greedy_is_deterministic(torch_engine, prompts):
    first = torch_engine.generate(prompts[1:2], greedy())[0]
    second = torch_engine.generate(prompts[1:2], greedy())[0]
    assert first.token_ids == second.token_ids
    assert first.text == second.text
    assert len(first.token_ids) == 24


def test_batched_left_padded_equals_single(torch_engine, prompts):
    assert len({len(p) for p in prompts}) == len(prompts)  # really different lengths: padding is exercised
    single = [torch_engine.generate([p], greedy())[0] for p in prompts]
    batched = torch_engine.generate(prompts, greedy())
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.prompt_tokens for c in batched] == [len(p) for p in prompts]


def test_same_seed_same_tokens_and_different_seeds_differ(torch_engine, prompts):
    def sample(seed):
        params = SamplingParams(max_tokens=16, temperature=1.0, seed=seed, ignore_eos=True)
        return torch_engine.generate(prompts[1:2], params)[0].token_ids

    assert sample(7) == sample(7)
    runs = {tuple(sample(seed)) for seed in range(5)}
    assert len(runs) > 1


def test_seeded_sampling_in_a_batch_matches_alone(torch_engine, prompts):
    params = SamplingParams(max_tokens=12, temperature=0.8, top_k=50, top_p=0.9, seed=3, ignore_eos=True)
    alone = torch_engine.generate(prompts[2:], params)[0].token_ids
    batched = torch_engine.generate(prompts, params)[2].token_ids
    assert batched == alone


def test_top_k_one_is_greedy(torch_engine, prompts):
    sampled = torch_engine.generate(prompts[1:2], SamplingParams(max_tokens=16, temperature=1.5, top_k=1, seed=1,
                                                                 ignore_eos=True))[0]
    assert sampled.token_ids == torch_engine.generate(prompts[1:2], greedy(16))[0].token_ids


def test_max_tokens_finishes_with_length(torch_engine, prompts):
    for max_tokens in (1, 5):
        out = torch_engine.generate(prompts[:1], greedy(max_tokens))[0]
        assert out.finish_reason == "length"
        assert out.completion_tokens == max_tokens == len(out.token_ids)


def test_usage_counts_prompt_tokens(torch_engine, prompts):
    outs = torch_engine.generate(prompts, greedy(3))
    for prompt, out in zip(prompts, outs):
        assert out.prompt_tokens == len(prompt)
        assert out.completion_tokens == 3
        assert 0 < out.ttft_s <= out.seconds


def _stop_candidate(text: str) -> tuple[str, int]:
    """A 2-char printable ASCII substring of ``text`` whose first occurrence is not at the start."""
    for i in range(1, len(text) - 1):
        stop = text[i:i + 2]
        if stop.isascii() and stop.isprintable() and text.find(stop) == i:
            return stop, i
    pytest.fail(f"no usable stop string in {text!r}")


def test_stop_string_truncates_text(torch_engine, prompts):
    full = torch_engine.generate(prompts[1:2], greedy(40))[0]
    stop, cut = _stop_candidate(full.text)
    out = torch_engine.generate(prompts[1:2], greedy(40, stop=[stop]))[0]
    assert out.finish_reason == "stop"
    assert out.text == full.text[:cut]
    assert stop not in out.text
    assert out.completion_tokens < full.completion_tokens
    assert out.token_ids == full.token_ids[:out.completion_tokens]


def test_stop_string_that_never_occurs_changes_nothing(torch_engine, prompts):
    full = torch_engine.generate(prompts[1:2], greedy(20))[0]
    out = torch_engine.generate(prompts[1:2], greedy(20, stop=["\x00never\x00"]))[0]
    assert (out.text, out.finish_reason) == (full.text, "length")


def test_context_budget(torch_engine, prompts):
    limit = torch_engine.context_length
    torch_engine.check_budget(limit - 10, 10)  # exactly the context: allowed
    with pytest.raises(ContextLengthExceeded) as err:
        torch_engine.check_budget(limit - 10, 11)
    assert err.value.code == "context_length_exceeded"
    assert err.value.status == 400
    assert str(limit) in str(err.value)
    with pytest.raises(ContextLengthExceeded):
        torch_engine.generate([prompts[0] * limit], greedy(1))


def test_empty_prompt_is_invalid(torch_engine):
    with pytest.raises(InvalidRequest):
        torch_engine.generate([[]], greedy(1))


@pytest.mark.parametrize("stop_from_text", [False, True])
def test_streamed_deltas_concatenate_to_final_text(torch_engine, prompts, stop_from_text):
    stop = []
    if stop_from_text:
        stop = [_stop_candidate(torch_engine.generate(prompts[2:], greedy(40))[0].text)[0]]
    params = [SamplingParams(max_tokens=40, temperature=t, seed=s, stop=stop, ignore_eos=True)
              for t, s in ((0.0, None), (1.2, 11), (0.0, None))]
    deltas = ["", "", ""]
    finished = [None, None, None]
    for step in torch_engine.iterate(prompts, params):
        for out in step:
            assert finished[out.index] is None  # nothing after the final step of a sequence
            deltas[out.index] += out.text_delta
            if out.finished:
                finished[out.index] = out.finish_reason
    final = torch_engine.generate(prompts, params)
    assert deltas == [c.text for c in final]
    assert finished == [c.finish_reason for c in final]


def _engine_with_eos(engine: Engine, eos: list[int]) -> Engine:
    return Engine(engine.backend, engine.tokenizer, eos_token_ids=eos, context_length=engine.context_length,
                  model_id="tiny-eos")


def test_eos_stops_and_ignore_eos_continues(torch_engine, prompts):
    full = torch_engine.generate(prompts[1:2], greedy(20))[0].token_ids
    k = next(i for i in range(2, len(full)) if full[i] not in full[:i])  # first new token from index 2 on
    engine = _engine_with_eos(torch_engine, [full[k]])

    stopped = engine.generate(prompts[1:2], SamplingParams(max_tokens=20))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == full[:k]  # the EOS token is neither returned nor counted
    assert stopped.completion_tokens == k
    assert stopped.text == torch_engine.tokenizer.decode(full[:k], skip_special_tokens=True)

    ignored = engine.generate(prompts[1:2], SamplingParams(max_tokens=20, ignore_eos=True))[0]
    assert ignored.finish_reason == "length"
    assert ignored.token_ids == full


def test_eos_in_a_batch_finishes_only_that_sequence(torch_engine, prompts):
    full = [c.token_ids for c in torch_engine.generate(prompts, greedy(10))]
    eos = full[0][0]  # the very first token of prompt 0
    engine = _engine_with_eos(torch_engine, [eos])
    outs = engine.generate(prompts, SamplingParams(max_tokens=10))
    assert outs[0].finish_reason == "stop" and outs[0].completion_tokens == 0 and outs[0].text == ""
    for ids, out in zip(full[1:], outs[1:]):
        expected = ids[:ids.index(eos)] if eos in ids else ids
        assert out.token_ids == expected
