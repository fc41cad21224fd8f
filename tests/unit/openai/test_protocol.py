"""The request model rejects what we do not support and normalises what we do."""

import pytest
from pydantic import ValidationError

from llmship.openai.protocol import MAX_N, ChatCompletionRequest, CompletionRequest

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
