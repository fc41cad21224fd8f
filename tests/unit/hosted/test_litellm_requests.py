"""What LiteLLM would send to each provider of the seed for an OpenAI-shaped request, built from a registered
``HostedModel`` by ``litellm_kwargs`` (the call ``HostedApp`` makes). No network: LiteLLM's own
``return_raw_request`` builds the provider request and stops before sending it."""

from __future__ import annotations

import ast

import pytest

from llmship.hosted import HostedModel
from llmship.hosted.calls import import_litellm, litellm_kwargs

BODY = {"model": "the-registered-name", "messages": [{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": "Hi"}], "max_tokens": 5,
        "temperature": 0}


def raw_request(spec: HostedModel, environ_key: str | None = None, monkeypatch=None) -> dict:
    import_litellm()
    from litellm.types.utils import CallTypes
    from litellm.utils import return_raw_request

    kwargs = litellm_kwargs(spec, BODY)
    kwargs.pop("api_key", None)  # return_raw_request passes its own placeholder key
    kwargs.pop("num_retries", None)
    raw = dict(return_raw_request(endpoint=CallTypes.completion, kwargs=kwargs))
    assert raw.get("error") in (None, "None", ""), raw
    return {"url": raw["raw_request_api_base"], "body": ast.literal_eval(str(raw["raw_request_body"])),
            "headers": ast.literal_eval(str(raw["raw_request_headers"]))}


def test_the_key_is_read_from_its_variable_when_the_call_is_made(monkeypatch):
    spec = HostedModel(source="litellm:anthropic/claude-sonnet-4-5", provider="anthropic", model="claude-sonnet-4-5",
                       api_key_env="ANTHROPIC_KEY_FOR_TEST", timeout_s=12)
    monkeypatch.setenv("ANTHROPIC_KEY_FOR_TEST", "sk-ant-test")
    kwargs = litellm_kwargs(spec, {**BODY, "stream": True})
    assert kwargs["api_key"] == "sk-ant-test" and kwargs["model"] == "anthropic/claude-sonnet-4-5"
    assert kwargs["timeout"] == 12 and kwargs["num_retries"] == 0 and kwargs["stream"] is True
    monkeypatch.setenv("ANTHROPIC_KEY_FOR_TEST", "sk-ant-rotated")
    assert litellm_kwargs(spec, BODY)["api_key"] == "sk-ant-rotated"  # rotated: no new release needed


def test_anthropic_messages_api():
    raw = raw_request(HostedModel(source="litellm:anthropic/claude-sonnet-4-5", provider="anthropic",
                                  model="claude-sonnet-4-5"))
    assert raw["url"] == "https://api.anthropic.com/v1/messages"
    assert raw["body"]["model"] == "claude-sonnet-4-5" and raw["body"]["max_tokens"] == 5
    assert raw["body"]["system"] == [{"type": "text", "text": "Be brief."}]  # the system message moves out
    assert raw["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert "anthropic-version" in raw["headers"] and "x-api-key" in raw["headers"]


def test_azure_openai_deployment():
    raw = raw_request(HostedModel(source="litellm:azure/gpt4o-prod", provider="azure", model="gpt4o-prod",
                                  base_url="https://acme.openai.azure.com", params={"api_version": "2024-10-21"}))
    assert raw["url"] == "https://acme.openai.azure.com"
    assert raw["body"]["model"] == "gpt4o-prod" and raw["body"]["messages"][0]["role"] == "system"


def test_dashscope_qwen_is_openai_compatible_mode():
    raw = raw_request(HostedModel(source="litellm:dashscope/qwen-max", provider="dashscope", model="qwen-max"))
    assert raw["url"].startswith("https://dashscope.aliyuncs.com/compatible-mode/v1")
    assert raw["body"]["model"] == "qwen-max" and raw["body"]["max_tokens"] == 5


def test_bedrock_converse_in_the_configured_region(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    raw = raw_request(HostedModel(source="litellm:bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
                                  provider="bedrock", model="anthropic.claude-3-5-haiku-20241022-v1:0",
                                  params={"aws_region_name": "eu-west-1"}))
    assert raw["url"].startswith("https://bedrock-runtime.eu-west-1.amazonaws.com/model/")
    assert raw["url"].endswith("/converse")
    assert raw["body"]["system"] == [{"text": "Be brief."}] and raw["body"]["inferenceConfig"] == {"maxTokens": 5, "temperature": 0}


@pytest.mark.parametrize("provider", ["deepseek", "moonshot", "ollama", "hosted_vllm"])
def test_other_seed_providers_are_known_to_litellm(provider):
    from llmship.hosted.spec import litellm_providers

    assert provider in litellm_providers()
