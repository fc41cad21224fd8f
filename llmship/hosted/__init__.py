"""Hosted models as releases: an OpenAI-compatible endpoint (``openai:<base_url>#<model>``) or a provider
LiteLLM speaks to (``litellm:<provider>/<model>``), validated, registered and served through llmship's gateway.

- ``spec``: ``HostedModel``, what the registry keeps about an upstream (never its key), and ``describe``.
- ``calls``: one chat call to the upstream, for validation (the ``openai`` SDK or ``litellm.acompletion``).
- ``check``: the gates that apply: smoke prompts, perplexity where the upstream returns prompt logprobs,
  TTFT / output tok/s at 1, 4 and 16 concurrent streams.
- ``app``: the ASGI app that serves a hosted release inside the chat service.
- ``llmship.openai.routes`` (the OpenAI surface's side): which model name goes where (engine, hosted, alias).
"""

from llmship.hosted.spec import HOSTED_FILE, HostedModel, describe, load_hosted

__all__ = ["HOSTED_FILE", "HostedModel", "describe", "load_hosted"]
