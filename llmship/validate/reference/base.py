"""The generation loop shared by every backend.

A backend only knows how to run one forward step with an explicit KV cache:
``forward(input_ids, attention_mask, position_ids, past) -> (last_logits, past)``
plus a few row operations on that cache (select, left-pad, concatenate), which
is all batched decoding needs. Everything
else — left padding, position ids, sampling, penalties, logprobs, stop tokens
and stop strings, usage accounting, time to first token — lives here once, so
PyTorch and ONNX Runtime produce comparable numbers and identical greedy text,
whether a sequence runs alone, in a static batch or joins a running one.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, Field, field_validator

from llmship.errors import ContextLengthExceeded, InvalidRequest

FinishReason = Literal["stop", "length"]
MAX_TOP_LOGPROBS = 20
MIN_TEMPERATURE = 1e-2  # vLLM's floor: below it logits / temperature overflows float32


class SamplingParams(BaseModel):
    """Per-request decoding parameters (OpenAI names; ``top_k`` and ``ignore_eos`` as in vLLM)."""

    max_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    ignore_eos: bool = False
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=MAX_TOP_LOGPROBS)

    @field_validator("temperature")
    @classmethod
    def _temperature_floor(cls, value: float) -> float:
        """0 is greedy; a positive temperature below ``MIN_TEMPERATURE`` is raised to it (as vLLM does), since
        logits divided by it overflow to inf and NaN probabilities — for callers of the engine that skip the
        HTTP request models too."""
        return MIN_TEMPERATURE if 0.0 < value < MIN_TEMPERATURE else value


@dataclass
class TokenLogprob:
    """The log-probability of one generated token and the most likely alternatives (raw model distribution)."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


class Completion(BaseModel):
    """One finished sequence with exact usage."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    seconds: float
    logprobs: list[TokenLogprob] = Field(default_factory=list)


@dataclass
class StepOutput:
    """What one decode step produced for one sequence."""

    index: int
    token_id: int
    text_delta: str
    finished: bool
    finish_reason: FinishReason | None = None
    completion_tokens: int = 0  # tokens counted in usage so far (an EOS token is not)
    logprobs: list[TokenLogprob] = field(default_factory=list)  # for the tokens behind text_delta


class KVBackend(Protocol):
    """A model that runs one step with an explicit, backend-specific KV cache.

    ``past`` is opaque to the engine; the row operations let a scheduler drop
    finished sequences and let new ones join without recomputing anybody's cache.
    Every row of a past has the same length; shorter histories are left-padded
    and masked out by ``attention_mask``.
    """

    name: str

    def empty_past(self, batch: int) -> Any: ...

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, past: Any
    ) -> tuple[torch.Tensor, Any]:
        """Return logits of the last position ``(batch, vocab)`` as float32 and the new past."""
        ...

    def select_rows(self, past: Any, rows: list[int]) -> Any: ...

    def pad_left(self, past: Any, n: int) -> Any: ...

    def drop_left(self, past: Any, n: int) -> Any: ...

    def concat(self, pasts: list[Any]) -> Any: ...


@dataclass
class SequenceState:
    """The state of one generating sequence, independent of the batch it runs in."""

    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of decoded text already handed out
    finished: bool = False
    finish_reason: FinishReason | None = None
    text: str = ""
    counts: Counter = field(default_factory=Counter)  # generated token -> times, for the penalties
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # held back with held-back text

    @property
    def needs_penalty(self) -> bool:
        return bool(self.params.presence_penalty or self.params.frequency_penalty)

    @property
    def needs_logprobs(self) -> bool:
        return self.params.logprobs or self.params.top_logprobs > 0




@functools.cache
def _byte_level_alphabet() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode``: which byte each printable stand-in character means."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


class Engine:
    """Batched generation over a ``KVBackend`` with a Hugging Face tokenizer."""

    def __init__(self, backend: KVBackend, tokenizer: Any, *, eos_token_ids: Sequence[int], context_length: int,
                 model_id: str) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.eos_token_ids = {int(t) for t in eos_token_ids}
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
        except Exception as err:  # noqa: BLE001 - jinja raise_exception / malformed content
            raise InvalidRequest(f"messages cannot be rendered with the chat template: {err}", param="messages") from None
        return self.encode(text, add_special_tokens=False)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def token_text(self, token_id: int) -> tuple[str, list[int]]:
        """One token as logprobs show it: its text and its exact UTF-8 bytes.

        A byte-fallback token (``<0xE2>``) is a fragment of a character: its
        text is the replacement character but its bytes are the real byte, so a
        client can reassemble multi-byte characters as OpenAI's ``bytes`` intends.
        """
        text = self.tokenizer.decode([token_id], skip_special_tokens=False)
        if "\ufffd" in text:
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                return text, [int(piece[3:5], 16)]  # SentencePiece byte fallback (Gemma, Llama)
            table = _byte_level_alphabet()
            if isinstance(piece, str) and piece and all(ch in table for ch in piece):
                return text, [table[ch] for ch in piece]  # byte-level BPE (GPT-2 style)
        return text, list(text.encode("utf-8"))

    def check_budget(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion).",
                param="messages",
            )

    def new_sequence(self, prompt: Sequence[int], params: SamplingParams) -> SequenceState:
        """Validate a request and give it its own random generator (so a seed means the same text in any batch)."""
        if not prompt:
            raise InvalidRequest("the prompt is empty", param="prompt")
        self.check_budget(len(prompt), params.max_tokens)
        gen = None
        if params.temperature > 0:
            seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, (1,)))
            gen = torch.Generator().manual_seed(seed)
        return SequenceState(prompt=list(prompt), params=params, generator=gen)

    def left_pad(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``input_ids``, ``attention_mask`` and ``position_ids`` of a left-padded prompt batch.

        Left padding keeps every sequence's last token in the last column, so
        one ``logits[:, -1]`` serves the whole batch.
        """
        batch, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p):] = torch.tensor(list(p))
            mask[i, width - len(p):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids, mask, positions

    # --------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams]) -> list[Completion]:
        """Generate for a static batch and return finished completions in order."""
        started = time.perf_counter()
        ttft: list[float | None] = [None] * len(prompts)
        logprobs: list[list[TokenLogprob]] = [[] for _ in prompts]
        seqs: list[SequenceState] = []
        for step in self.iterate(prompts, params, _collect=seqs):
            now = time.perf_counter() - started
            for out in step:
                if ttft[out.index] is None:
                    ttft[out.index] = now
                logprobs[out.index].extend(out.logprobs)
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
                logprobs=logprobs[i],
            )
            for i, s in enumerate(seqs)
        ]

    def iterate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams],
                _collect: list[SequenceState] | None = None) -> Iterator[list[StepOutput]]:
        """Yield, for every decode step, the outputs of the sequences still running (a static batch)."""
        if not prompts:
            return
        plist = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        if len(plist) != len(prompts):
            raise ValueError("one SamplingParams per prompt")
        seqs = [self.new_sequence(prompt, p) for prompt, p in zip(prompts, plist)]
        if _collect is not None:
            _collect.extend(seqs)

        batch = len(seqs)
        input_ids, mask, positions = self.left_pad([s.prompt for s in seqs])
        past = self.backend.empty_past(batch)
        with torch.inference_mode():
            while True:
                logits, past = self.backend.forward(input_ids, mask, positions, past)
                next_ids, logprobs = self.sample(logits, seqs)
                step: list[StepOutput] = []
                for i, s in enumerate(seqs):
                    if s.finished:
                        continue
                    step.append(self.advance(i, s, int(next_ids[i]), logprobs[i]))
                yield step
                if all(s.finished for s in seqs):
                    return
                input_ids = next_ids.view(batch, 1)
                mask = torch.cat([mask, torch.ones((batch, 1), dtype=torch.long)], dim=1)
                positions = positions[:, -1:] + 1

    def advance(self, index: int, s: SequenceState, token: int, logprob: TokenLogprob | None = None) -> StepOutput:
        """Append one sampled token to ``s``; decide whether it finished and what text it may emit now."""
        if token in self.eos_token_ids and not s.params.ignore_eos:
            s.finished, s.finish_reason = True, "stop"
            return self._out(index, s, token, "stop")
        s.tokens.append(token)
        s.counts[token] += 1
        if logprob is not None:
            s.pending_logprobs.append(logprob)
        s.text = self.tokenizer.decode(s.tokens, skip_special_tokens=True)
        for stop in s.params.stop:
            cut = s.text.find(stop, max(0, s.emitted - len(stop)))
            if cut != -1:
                s.text = s.text[:cut]
                s.finished, s.finish_reason = True, "stop"
                return self._out(index, s, token, "stop")
        if len(s.tokens) >= s.params.max_tokens:
            s.finished, s.finish_reason = True, "length"
            return self._out(index, s, token, "length")
        return self._out(index, s, token, None)

    def _out(self, index: int, s: SequenceState, token: int, reason: FinishReason | None) -> StepOutput:
        delta = self._flush(s, final=reason is not None)
        logprobs: list[TokenLogprob] = []
        if s.pending_logprobs and (delta or reason is not None):
            logprobs, s.pending_logprobs = s.pending_logprobs, []
        return StepOutput(index, token, delta, reason is not None, reason, len(s.tokens), logprobs)

    def _flush(self, s: SequenceState, final: bool) -> str:
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
    def sample(logits: torch.Tensor, seqs: Sequence[SequenceState]) -> tuple[torch.Tensor, list[TokenLogprob | None]]:
        """Next token per row (greedy or seeded sampling after penalties) and, where asked, its logprobs.

        Logprobs describe the raw model distribution (before temperature and
        penalties), as vLLM reports them by default.
        """
        out = logits.max(dim=-1).indices  # same first-max tie rule as argmax, ~2.5x faster on CPU
        logprobs: list[TokenLogprob | None] = [None] * len(seqs)
        for i, s in enumerate(seqs):
            p = s.params
            if s.finished:
                continue
            row = logits[i].float()
            if s.needs_penalty and s.counts:
                ids = torch.tensor(list(s.counts.keys()), dtype=torch.long)
                freq = torch.tensor(list(s.counts.values()), dtype=torch.float32)
                row = row.clone()
                row[ids] -= p.frequency_penalty * freq + p.presence_penalty
            if p.temperature <= 0:
                if s.needs_penalty:
                    out[i] = row.max(dim=-1).indices
            else:
                row = row / p.temperature
                if p.top_k > 0:
                    kth = torch.topk(row, min(p.top_k, row.numel())).values[-1]
                    row = row.masked_fill(row < kth, float("-inf"))
                if p.top_p < 1.0:
                    sorted_logits, order = torch.sort(row, descending=True)
                    probs = sorted_logits.softmax(-1)
                    drop = probs.cumsum(-1) - probs > p.top_p  # keep the token that crosses top_p
                    row = row.clone()
                    row[order[drop]] = float("-inf")
                out[i] = torch.multinomial(row.softmax(-1), 1, generator=s.generator)[0]
            if s.needs_logprobs:
                lp = torch.log_softmax(logits[i].float(), dim=-1)
                token = int(out[i])
                top: list[tuple[int, float]] = []
                if p.top_logprobs:
                    values, ids = torch.topk(lp, p.top_logprobs)
                    top = [(int(t), float(v)) for t, v in zip(ids, values)]
                logprobs[i] = TokenLogprob(token, float(lp[token]), top)
        return out, logprobs
