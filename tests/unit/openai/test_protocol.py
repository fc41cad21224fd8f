"""The request model rejects what we do not support and normalises what we do."""

import pytest
from pydantic import ValidationError

from llmship.openai.protocol import (
    MAX_N,
    MIN_TEMPERATURE,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    lone_surrogate,
)

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("stop", "expected"), [(None, []), ("", []), ([""], []), ("END", ["END"]),
                                                (["a", "", "b"], ["a", "b"])])
def test_stop_list_drops_empty_strings(stop, expected):
    assert ChatCompletionRequest(model="m", messages=MSG, stop=stop).stop_list() == expected


def test_unknown_parameters_are_rejected_by_name():
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest(model="m", messages=MSG, tools=[])
    assert err.value.errors()[0]["loc"] == ("tools",)


def test_developer_role_and_text_parts_render_as_plain_messages():
    req = ChatCompletionRequest(model="m", messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert [m.as_template_dict() for m in req.messages] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"}]


def test_n_is_bounded():
    assert ChatCompletionRequest(model="m", messages=MSG, n=MAX_N).n == MAX_N
    for n in (0, MAX_N + 1):
        with pytest.raises(ValidationError):
            ChatCompletionRequest(model="m", messages=MSG, n=n)


def test_null_means_not_given_but_a_value_is_checked():
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": MSG, "tools": None, "logit_bias": None,
                                                 "seed": None})
    assert req.seed is None
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest.model_validate({"model": "m", "messages": MSG, "logit_bias": {"1": 5}})
    assert err.value.errors()[0]["loc"] == ("logit_bias",)


def test_completion_request_takes_text_or_token_prompts():
    assert CompletionRequest(model="m", prompt="hi").max_tokens == 16  # OpenAI's default for completions
    assert CompletionRequest(model="m", prompt=[1, 2, 3]).prompt == [1, 2, 3]
    assert CompletionRequest(model="m", prompt=[[1, 2], [3]]).prompt == [[1, 2], [3]]
    assert CompletionRequest(model="m", prompt=["a", "b"]).prompt == ["a", "b"]
    with pytest.raises(ValidationError):
        CompletionRequest(model="m", prompt=[{"x": 1}])


# ---- found by tests/reliability/test_fuzz.py: each of these was a 500 (a crash) before the protocol refused it
@pytest.mark.parametrize(("body", "where"), [
    ({"model": "\ud800", "messages": MSG}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "a\udfffb"}]}, "messages.0.content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "\udc00"}]}]},
     "messages.0.content.0.text"),
    ({"model": "m", "messages": MSG, "stop": ["ok", "\ud83d"]}, "stop.1"),
    ({"model": "m", "messages": MSG, "bogus\ud800": 1}, "bogus\\ud800"),  # a key: named, escaped
])
def test_lone_surrogates_are_refused_where_they_are(body, where):
    assert lone_surrogate(body) == where
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest.model_validate(body)
    first = err.value.errors()[0]
    assert first["type"] == "invalid_unicode" and first["ctx"]["param"] == where


def test_astral_characters_and_deep_documents_are_fine():
    emoji = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "\U0001F600"}]})
    assert emoji.messages[0].content == "\U0001F600"
    deep: list = ["\udfff"]
    for _ in range(5000):  # deeper than Python's recursion limit: the walk is iterative
        deep = [deep]
    assert lone_surrogate({"input": deep}).startswith("input.0.0.0")
    with pytest.raises(ValidationError):
        EmbeddingRequest.model_validate({"model": "m", "input": "x\ud800"})
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": ["ok", "\ud800"]})


def test_seed_has_the_int64_range():
    for seed in (-(2**63), -1, 0, 2**63 - 1):
        assert ChatCompletionRequest(model="m", messages=MSG, seed=seed).seed == seed
    for seed in (-(2**63) - 1, 2**63, 2**64):  # torch.Generator.manual_seed overflowed: a 500
        with pytest.raises(ValidationError) as err:
            CompletionRequest(model="m", prompt="a", seed=seed)
        assert err.value.errors()[0]["loc"] == ("seed",)


def test_a_tiny_positive_temperature_is_raised_to_the_floor():
    """logits / 2.5e-207 is inf in float32 and the softmax NaN: torch.multinomial failed (a 500)."""
    for tiny in (5e-324, 2.5e-207, 1e-39, MIN_TEMPERATURE / 2):
        assert ChatCompletionRequest(model="m", messages=MSG, temperature=tiny).temperature == MIN_TEMPERATURE
    assert ChatCompletionRequest(model="m", messages=MSG, temperature=0).temperature == 0  # greedy stays greedy
    assert CompletionRequest(model="m", prompt="a", temperature=0.7).temperature == 0.7


@pytest.mark.parametrize("sid", ["\U000c4ad6", "a b", "a/b", "x\r\ny", "caf\u00e9"])
def test_session_id_is_an_identifier(sid):
    """It comes back in a header (latin-1 only: a non-latin-1 id crashed the response) and in URL paths."""
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest(model="m", messages=MSG, session_id=sid)
    assert err.value.errors()[0]["loc"] == ("session_id",)
    assert ChatCompletionRequest(model="m", messages=MSG, session_id="user-42:chat.1@app~x+y").session_id
