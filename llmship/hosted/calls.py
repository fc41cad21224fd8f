"""One call to a hosted model, as a client makes it: the official ``openai`` SDK for an OpenAI-compatible
endpoint, LiteLLM's ``acompletion`` for the other providers. The validation steps (``llmship.hosted.check``)
measure through these, so the smoke prompts and the benchmark see what a client of the upstream sees."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from llmship.hosted.spec import HostedModel


def import_litellm() -> Any:
    """LiteLLM, configured for a machine that may be offline and must not leak: the bundled model-cost map (not a
    download at import), no telemetry, no verbose logging (it would print request headers)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    return litellm


def litellm_kwargs(spec: HostedModel, body: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``litellm.acompletion`` for an OpenAI-shaped request body."""
    kwargs = {k: v for k, v in body.items() if k != "model"}
    kwargs.update(model=spec.litellm_model, timeout=spec.timeout_s, num_retries=0, **spec.params)
    key = spec.api_key()
    if key:
        kwargs["api_key"] = key
    if spec.base_url:
        kwargs["api_base"] = spec.base_url
    return kwargs


def openai_client(spec: HostedModel) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=spec.base_url, api_key=spec.api_key() or "unused", timeout=spec.timeout_s,
                              max_retries=0)


@dataclass
class StreamedAnswer:
    """One streamed chat answer, timed as it arrived."""

    text: str = ""
    submitted: float = 0.0
    first: float | None = None  # the first chunk carrying text
    last: float | None = None
    gaps: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str | None = None

    @property
    def ttft_s(self) -> float:
        return (self.first or self.last or self.submitted) - self.submitted


async def stream_chat(spec: HostedModel, messages: list[dict[str, Any]], max_tokens: int,
                      temperature: float = 0.0, client: Any = None) -> StreamedAnswer:
    """Stream one chat answer with usage; token count from the upstream's usage (chunks may hold several)."""
    body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                            "stream": True, "stream_options": {"include_usage": True}}
    answer = StreamedAnswer(submitted=time.perf_counter())
    if spec.via_litellm:
        stream = await import_litellm().acompletion(**litellm_kwargs(spec, body))
    else:
        stream = await (client or openai_client(spec)).chat.completions.create(model=spec.model, **body)
    parts: list[str] = []
    chunks = 0
    async for chunk in stream:
        now = time.perf_counter()
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "completion_tokens", None):
            answer.completion_tokens = int(usage.completion_tokens)
        for choice in getattr(chunk, "choices", None) or []:
            text = getattr(choice.delta, "content", None) or ""
            if text:
                chunks += 1
                if answer.first is None:
                    answer.first = now
                elif answer.last is not None:
                    answer.gaps.append(now - answer.last)
                answer.last = now
                parts.append(text)
            if choice.finish_reason:
                answer.finish_reason = str(choice.finish_reason)
    answer.text = "".join(parts)
    answer.completion_tokens = answer.completion_tokens or chunks  # no usage in the stream: one token per chunk
    return answer


async def prompt_logprobs(spec: HostedModel, text: str, client: Any = None) -> list[float]:
    """The log-probability of every token of ``text`` but the first, from a legacy completion with ``echo`` and
    ``logprobs`` (vLLM, llama.cpp and llmship answer it; most hosted chat APIs do not: the caller records
    perplexity as not available then)."""
    if spec.via_litellm:
        raise NotImplementedError(f"{spec.provider} through LiteLLM returns no prompt log-probabilities")
    out = await (client or openai_client(spec)).completions.create(model=spec.model, prompt=text, max_tokens=1,
                                                                    echo=True, logprobs=0, temperature=0.0)
    logprobs = out.choices[0].logprobs
    values = list(getattr(logprobs, "token_logprobs", None) or [])
    generated = int(getattr(out.usage, "completion_tokens", 0) or 0) if out.usage else 0
    if generated:
        values = values[:-generated]
    if len(values) < 2 or any(v is None for v in values[1:]):
        raise ValueError("the upstream returned no log-probabilities for the prompt's tokens")
    return [float(v) for v in values[1:]]
