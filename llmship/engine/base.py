"""The generation loop shared by every backend.

A backend only knows how to run one forward step with an explicit KV cache:
``forward(input_ids, attention_mask, position_ids, past) -> (last_logits, past)``.
Everything else — left padding, position ids, sampling, stop tokens and stop
strings, usage accounting, time to first token — lives here once, so PyTorch
and ONNX Runtime produce comparable numbers and identical greedy text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, Field

from llmship.errors import ContextLengthExceeded, InvalidRequest

FinishReason = Literal["stop", "length"]


class SamplingParams(BaseModel):
    """Per-request decoding parameters (OpenAI names)."""

    max_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    ignore_eos: bool = False


class Completion(BaseModel):
    """One finished sequence with exact usage."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    seconds: float


@dataclass
class StepOutput:
    """What one decode step produced for one sequence."""

    index: int
    token_id: int
    text_delta: str
    finished: bool
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0  # tokens counted in usage so far (an EOS token is not)


class KVBackend(Protocol):
    """A model that runs one step with an explicit, backend-specific KV cache."""

    name: str

    def empty_past(self, batch: int) -> Any: ...

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, past: Any
    ) -> tuple[torch.Tensor, Any]:
        """Return logits of the last position ``(batch, vocab)`` as float32 and the new past."""
        ...


@dataclass
class _Seq:
    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of decoded text already handed out
    finished: bool = False
    finish_reason: FinishReason | None = None
    text: str = ""


class Engine:
    """Batched generation over a ``KVBackend`` with a Hugging Face tokenizer."""

    def __init__(self, backend: KVBackend, tokenizer: Any, *, eos_token_ids: Sequence[int], context_length: int,
                 model_id: str) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.eos_token_ids = set(int(t) for t in eos_token_ids)
        self.context_length = int(context_length)
        self.model_id = model_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_token_ids)

    @property
    def name(self) -> str:
        return self.backend.name

    # ------------------------------------------------------------------ prompts
    def apply_chat_template(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of a conversation rendered with the model's chat template."""
        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as err:  # jinja raise_exception / malformed content
            raise InvalidRequest(f"messages cannot be rendered with the chat template: {err}", param="messages") from None
        return self.encode(text, add_special_tokens=False)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def check_budget(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion).",
                param="messages",
            )

    # --------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams]) -> list[Completion]:
        """Generate for a static batch and return finished completions in order."""
        started = time.perf_counter()
        ttft: list[float | None] = [None] * len(prompts)
        seqs: list[_Seq] = []
        for step in self.iterate(prompts, params, _collect=seqs):
            now = time.perf_counter() - started
            for out in step:
                if ttft[out.index] is None:
                    ttft[out.index] = now
        elapsed = time.perf_counter() - started
        return [
            Completion(
                text=s.text,
                token_ids=s.tokens,
                finish_reason=s.finish_reason or "length",
                prompt_tokens=len(s.prompt),
                completion_tokens=len(s.tokens),
                ttft_s=ttft[i] or elapsed,
                seconds=elapsed,
            )
            for i, s in enumerate(seqs)
        ]

    def iterate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams],
                _collect: list[_Seq] | None = None) -> Iterator[list[StepOutput]]:
        """Yield, for every decode step, the outputs of the sequences still running."""
        if not prompts:
            return
        plist = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(plist) != len(prompts):
            raise ValueError("one SamplingParams per prompt")
        seqs = []
        for prompt, p in zip(prompts, plist):
            if not prompt:
                raise InvalidRequest("the prompt is empty", param="prompt")
            self.check_budget(len(prompt), p.max_tokens)
            gen = None
            if p.temperature > 0:
                gen = torch.Generator().manual_seed(p.seed if p.seed is not None else int(torch.randint(0, 2**62, (1,))))
            seqs.append(_Seq(prompt=list(prompt), params=p, generator=gen))
        if _collect is not None:
            _collect.extend(seqs)

        batch = len(seqs)
        width = max(len(s.prompt) for s in seqs)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding keeps every sequence's last token in the last column
            input_ids[i, width - len(s.prompt):] = torch.tensor(s.prompt)
            mask[i, width - len(s.prompt):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past = self.backend.empty_past(batch)
        with torch.inference_mode():
            while True:
                logits, past = self.backend.forward(input_ids, mask, positions, past)
                next_ids = self._sample(logits, seqs)
                step: list[StepOutput] = []
                for i, s in enumerate(seqs):
                    if s.finished:
                        continue
                    step.append(self._advance(i, s, int(next_ids[i])))
                yield step
                if all(s.finished for s in seqs):
                    return
                input_ids = next_ids.view(batch, 1)
                mask = torch.cat([mask, torch.ones((batch, 1), dtype=torch.long)], dim=1)
                positions = positions[:, -1:] + 1

    def _advance(self, index: int, s: _Seq, token: int) -> StepOutput:
        if token in self.eos_token_ids and not s.params.ignore_eos:
            s.finished, s.finish_reason = True, "stop"
            return StepOutput(index, token, self._flush(s, final=True), True, "stop", len(s.tokens))
        s.tokens.append(token)
        s.text = self.tokenizer.decode(s.tokens, skip_special_tokens=True)
        for stop in s.params.stop:
            cut = s.text.find(stop, max(0, s.emitted - len(stop)))
            if cut != -1:
                s.text = s.text[:cut]
                s.finished, s.finish_reason = True, "stop"
                return StepOutput(index, token, self._flush(s, final=True), True, "stop", len(s.tokens))
        if len(s.tokens) >= s.params.max_tokens:
            s.finished, s.finish_reason = True, "length"
            return StepOutput(index, token, self._flush(s, final=True), True, "length", len(s.tokens))
        return StepOutput(index, token, self._flush(s, final=False), False, None, len(s.tokens))

    def _flush(self, s: _Seq, final: bool) -> str:
        """Text not yet emitted, holding back an incomplete UTF-8 char or a possible stop-string prefix."""
        end = len(s.text)
        if not final:
            if s.text.endswith("\ufffd"):
                return ""
            for stop in s.params.stop:
                for k in range(min(len(stop) - 1, end), 0, -1):
                    if s.text.endswith(stop[:k]):
                        end = min(end, len(s.text) - k)
                        break
        delta = s.text[s.emitted:end]
        s.emitted = max(s.emitted, end)
        return delta

    @staticmethod
    def _sample(logits: torch.Tensor, seqs: list[_Seq]) -> torch.Tensor:
        out = logits.argmax(dim=-1)
        for i, s in enumerate(seqs):
            p = s.params
            if s.finished or p.temperature <= 0:
                continue
            row = logits[i].float() / p.temperature
            if p.top_k > 0:
                kth = torch.topk(row, min(p.top_k, row.numel())).values[-1]
                row = row.masked_fill(row < kth, float("-inf"))
            if p.top_p < 1.0:
                sorted_logits, order = torch.sort(row, descending=True)
                cum = sorted_logits.softmax(-1).cumsum(-1)
                drop = cum - sorted_logits.softmax(-1) > p.top_p  # keep the token that crosses top_p
                row[order[drop]] = float("-inf")
            out[i] = torch.multinomial(row.softmax(-1), 1, generator=s.generator)[0]
        return out
