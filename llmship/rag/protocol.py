"""Request and response models of the RAG API (OpenAI chat plus ``/v1/retrieve``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmship.knowledge.retrieval.retriever import Mode, ScoredChunk
from llmship.openai.protocol import ChatCompletionRequest, _Request

RAG_MODEL = "rag"
MAX_TOP_K = 50


class RagOptions(BaseModel):
    """Per-request retrieval knobs, as the extra body field ``rag`` (``top_k`` at the top level is the
    sampling parameter, as in vLLM)."""

    model_config = ConfigDict(extra="forbid")
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)
    mode: Mode | None = None
    collection: str | None = Field(default=None, min_length=1, max_length=200)
    rerank: bool = True


class RagChatRequest(ChatCompletionRequest):
    rag: RagOptions | None = None


class RetrieveRequest(_Request):
    query: str = Field(min_length=1, max_length=8000)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    mode: Mode = "hybrid"
    collection: str | None = Field(default=None, min_length=1, max_length=200)
    rerank: bool = True


class RetrieveResponse(BaseModel):
    object: Literal["list"] = "list"
    query: str
    mode: Mode
    reranker: str | None
    knowledge_version: str | None
    data: list[ScoredChunk]
