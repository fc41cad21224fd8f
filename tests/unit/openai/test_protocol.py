"""The request model rejects what we do not support and normalises what we do."""

import pytest
from pydantic import ValidationError

from llmship.openai.protocol import ChatCompletionRequest

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


def test_n_above_one_is_refused():
    with pytest.raises(ValidationError):
        ChatCompletionRequest(model="m", messages=MSG, n=2)
