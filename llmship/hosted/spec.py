"""``HostedModel``: what a hosted release is (provider, endpoint, model, the *name* of its key's variable).

It is the artifact a hosted model version registers (``hosted.json``), so it must never hold a secret: the key is
read from the environment variable it names when a call is made, in the step or the service that makes it. A
``provider_params`` entry whose name looks like a secret is refused for the same reason.

``openai`` (any OpenAI-compatible ``/v1``) is called directly, byte for byte; every other provider goes through
LiteLLM's SDK (``litellm.acompletion``), which maps Azure OpenAI, Anthropic, Bedrock, DashScope (Qwen) and the
rest to and from the OpenAI format, so llmship carries no adapter of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llmship.config import BuildConfig
from llmship.errors import LlmshipError, SourceError
from llmship.models.source import ModelSource

HOSTED_FILE = "hosted.json"
_SECRETISH = re.compile(r"key|secret|token|password|credential|auth", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class HostedKeyMissing(LlmshipError):
    """The environment variable a hosted model's key lives in is not set where the call is made."""

    status = 503
    type = "server_error"
    code = "upstream_key_missing"


class HostedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # the build.source it was described from
    provider: str  # "openai": any OpenAI-compatible /v1; else a LiteLLM provider ("anthropic", "azure", ...)
    base_url: str | None = None  # openai: the /v1 base; LiteLLM: api_base when not the provider's default
    model: str  # the upstream's model id
    api_key_env: str | None = None  # the variable holding the key (None: no key, or LiteLLM's own variables)
    params: dict[str, str] = Field(default_factory=dict)  # LiteLLM extras: api_version, aws_region_name, ...
    timeout_s: float = 60.0

    @property
    def via_litellm(self) -> bool:
        return self.provider != "openai"

    @property
    def litellm_model(self) -> str:
        return f"{self.provider}/{self.model}"

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key, read now from the variable this model names (``HostedKeyMissing`` if it is not set)."""
        if not self.api_key_env:
            return None
        value = (os.environ if environ is None else environ).get(self.api_key_env)
        if not value:
            raise HostedKeyMissing(f"the key variable {self.api_key_env} of {self.source} is not set")
        return value

    def describe(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"{self.provider} model {self.model}{where}"


def describe(build: BuildConfig, environ: Mapping[str, str] | None = None) -> HostedModel:
    """The ``HostedModel`` that ``build`` names; one-line errors for what cannot work (an unknown LiteLLM provider,
    a secret-looking parameter, a key variable that is not set here)."""
    src = ModelSource.parse(build.source)
    if not src.hosted:
        raise SourceError(f"{src} is not a hosted model source (openai:<base_url>#<model> or "
                          "litellm:<provider>/<model>)")
    if build.api_key_env is not None and not _ENV_NAME.match(build.api_key_env):
        raise SourceError(f"build.api_key_env must name an environment variable (like DEEPSEEK_API_KEY), not "
                          f"{'a value' if len(build.api_key_env) > 20 else repr(build.api_key_env)}")
    for name in build.provider_params:
        if _SECRETISH.search(name):
            raise SourceError(f"build.provider_params.{name} looks like a secret; config never holds one: put it "
                              "in an environment variable and name that with build.api_key_env")
    if src.scheme == "openai":
        if build.api_base:
            raise SourceError("build.api_base is for litellm: sources; an openai: source carries its base URL")
        if build.provider_params:
            raise SourceError("build.provider_params is for litellm: sources")
        spec = HostedModel(source=str(src), provider="openai", base_url=src.ref, model=str(src.model),
                           api_key_env=build.api_key_env, timeout_s=build.timeout_s)
    else:
        provider, _, model = src.ref.partition("/")
        known = litellm_providers()
        if provider not in known:
            raise SourceError(f"LiteLLM has no provider {provider!r}; known ones include "
                              f"{', '.join(sorted(p for p in known if p in _SEED_PROVIDERS))}")
        spec = HostedModel(source=str(src), provider=provider, base_url=build.api_base, model=model,
                           api_key_env=build.api_key_env, params=dict(build.provider_params),
                           timeout_s=build.timeout_s)
    env = os.environ if environ is None else environ
    if spec.api_key_env and not env.get(spec.api_key_env):
        raise SourceError(f"build.api_key_env names {spec.api_key_env}, which is not set: export it, or put it in "
                          "the ZenML secret 'llmship' (LLMSHIP_ZENML_SECRET)")
    return spec


_SEED_PROVIDERS = {"openai", "azure", "anthropic", "bedrock", "dashscope", "deepseek", "moonshot", "ollama",
                   "hosted_vllm", "gemini", "mistral"}


def litellm_providers() -> set[str]:
    from llmship.hosted.calls import import_litellm

    return {str(getattr(p, "value", p)) for p in import_litellm().provider_list}


def load_hosted(folder: str | Path) -> HostedModel:
    """The ``HostedModel`` a registered hosted version carries (its artifact folder)."""
    path = Path(folder) / HOSTED_FILE
    if not path.is_file():
        raise SourceError(f"{folder} is not a hosted model version (no {HOSTED_FILE})")
    return HostedModel.model_validate_json(path.read_text())
