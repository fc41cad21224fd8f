"""Pydantic models of the OpenAI API — the one module that owns the protocol.

Requests forbid unknown fields: a parameter we do not implement is rejected
with a 400 naming it, never silently ignored. A field sent as ``null`` means
"not given" (as the OpenAI SDKs and LangChain send it), so unknown keys whose
value is null are dropped rather than rejected. Extras beyond OpenAI's set are
the ones vLLM users know (``top_k``, ``ignore_eos``) plus ``session_id``
(server-side conversations, like LMDeploy's interactive mode).

Text must be Unicode: JSON can spell a lone UTF-16 surrogate (``"\\ud800"``) and Python keeps it, but no
tokenizer, UTF-8 encoder or upstream client can take one, so a request that holds one anywhere (a value or a
key) is refused up front with a 400 ``invalid_unicode`` naming where it is. ``seed`` has OpenAI's int64
range; a positive ``temperature`` below ``MIN_TEMPERATURE`` is raised to it, as vLLM does; ``session_id`` is an
identifier (ASCII letters, digits and ``._:@~+-``), since it comes back in a header and in URL paths.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_N = 8
INT64 = 2**63
SESSION_ID = r"^[A-Za-z0-9._:@~+-]+$"
SESSION_ID_RE = re.compile(SESSION_ID)
MIN_TEMPERATURE = 1e-2  # vLLM's floor: below it logits / temperature overflows float32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls.model_fields}
        return data

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        where = lone_surrogate(data)
        if where is not None:
            raise PydanticCustomError("invalid_unicode", "the text holds a lone UTF-16 surrogate, which is not valid "
                                      "Unicode; send UTF-8 text (astral characters as one code point or a "
                                      "surrogate pair)", {"param": where})
        return data


def lone_surrogate(data: Any) -> str | None:
    """Where in a parsed JSON document a string or key holds a lone surrogate (``messages.0.content``; ``""`` for
    the document itself), or None. Iterative, so any depth the JSON parser accepted is fine here too."""
    stack: list[tuple[Any, tuple | None]] = [(data, None)]  # (value, its location as a (key, parent) chain)
    while stack:
        value, at = stack.pop()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            if isinstance(value, str) and _SURROGATE.search(value):
                return _where(at)
            continue
        for key, item in items:
            if isinstance(key, str) and _SURROGATE.search(key) or isinstance(item, str) and _SURROGATE.search(item):
                return _where((key, at))
            if isinstance(item, (dict, list)):
                stack.append((item, (key, at)))
    return None


def huge_integer(data: Any) -> str | None:
    """Where a request holds an integer outside int64 (``top_k``: 2**64), or None. JSON allows any size, but
    vLLM's own serialisation of sampling parameters fails on one (a 500 the fuzz found), and no parameter needs
    more than OpenAI's int64 range."""
    stack: list[tuple[Any, tuple | None]] = [(data, None)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not -INT64 <= value < INT64:
                return _where(at)
        elif isinstance(value, dict):
            stack.extend((item, (key, at)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (i, at)) for i, item in enumerate(value))
    return None


def _where(at: tuple | None) -> str:
    parts = []
    while at is not None:
        key, at = at
        parts.append(str(key).encode("utf-8", "backslashreplace").decode("utf-8"))
    return ".".join(reversed(parts))


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def as_template_dict(self) -> dict[str, Any]:
        role = "system" if self.role == "developer" else self.role
        content = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": role, "content": content}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class _Sampling(_Request):
    """Parameters shared by chat and text completions."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-INT64, lt=INT64)  # what torch and OpenAI take
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    ignore_eos: bool = False
    user: str | None = None

    @field_validator("temperature")
    @classmethod
    def _temperature_floor(cls, value: float) -> float:
        """0 is greedy; a positive temperature under ``MIN_TEMPERATURE`` (0.01) is raised to it, as vLLM does:
        dividing float32 logits by it would give inf and NaN probabilities."""
        return MIN_TEMPERATURE if 0 < value < MIN_TEMPERATURE else value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s]  # an empty stop string would end every completion at once


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # An identifier: it travels back in the x-llmship-session-id header and in /v1/sessions/{id} paths, where
    # non-ASCII, control characters or "/" cannot go.
    session_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=SESSION_ID)


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for /v1/completions
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


# ---- logprobs, in the two shapes OpenAI uses
class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobEntry(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobEntry] | None = None
    refusal: None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


# ---- chat completions
class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: ChoiceMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: _id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    session_id: str | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


# ---- text completions
class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: CompletionLogprobs | None = None


class TextCompletion(BaseModel):
    id: str = Field(default_factory=lambda: _id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# ---- models and sessions
class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llmship"
    root: str | None = None
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class SessionInfo(BaseModel):
    id: str
    object: Literal["session"] = "session"
    messages: int
    created: int
    last_used: int
    expires_at: int


class SessionDeleted(BaseModel):
    id: str
    object: Literal["session"] = "session"
    deleted: bool = True


# ---- embeddings

from pydantic import ValidationError, ValidatorFunctionWrapHandler, field_validator


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``. ``input`` is typed wide on purpose: the route refuses token-id arrays and an
    empty list with a 400 naming ``input`` (a 422 would read as a malformed body), and checks ``dimensions``
    against the served model, since only the backend knows its size."""

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input", mode="wrap")
    @classmethod
    def _one_input_error(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:  # one error naming ``input``, not one per union member (``input.str``, ``input.list[int]``, ...)
            return handler(value)
        except ValidationError:
            raise ValueError("must be a string or a list of strings") from None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of the little-endian float32 bytes


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
