"""The grounded prompt: numbered sources in a system message that demands citations, then the conversation.

The sources go into the system message (the shipped chat templates fold a system message into the first
user turn) so any OpenAI-compatible chat model can take them; the user's own system messages follow the
instruction. ``max_context_chars`` bounds the sources (best first; a source that would not fit is left out,
never cut mid-text, so a citation always points at a whole stored chunk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmship.rag.citations import Citation

INSTRUCTION = (
    "Answer the question using only the numbered sources below. Cite the source of each fact with its number "
    "in square brackets, like [1]. If the sources do not contain the answer, say that you do not know."
)
NO_SOURCES_ANSWER = "No sources found: the knowledge base has nothing that matches this question."


def numbered_sources(chunks: Sequence[Any], max_context_chars: int) -> list[Citation]:
    """Retrieved chunks (``ScoredChunk``s, best first) as the numbered sources ``[1]..[n]`` that fit the budget."""
    fields = set(Citation.model_fields)
    return fit_sources([Citation(index=i, **c.model_dump(include=fields)) for i, c in enumerate(chunks, start=1)],
                       max_context_chars)


def fit_sources(sources: Sequence[Citation], max_context_chars: int) -> list[Citation]:
    """The best-first prefix of ``sources`` whose texts fit the budget (at least one, whole)."""
    kept: list[Citation] = []
    used = 0
    for s in sources:
        if kept and used + len(s.text) > max_context_chars:
            break
        kept.append(s)
        used += len(s.text)
    return kept


def source_block(sources: Sequence[Citation]) -> str:
    parts = []
    for s in sources:
        head = f"[{s.index}] {s.title} ({s.doc_id})" if s.title else f"[{s.index}] {s.doc_id}"
        parts.append(f"{head}\n{s.text.strip()}")
    return "\n\n".join(parts)


def grounded_messages(messages: Sequence[dict[str, Any]], sources: Sequence[Citation],
                      instruction: str = INSTRUCTION) -> list[dict[str, Any]]:
    """The chat messages to send: one system message (instruction, the user's system text, the sources), then
    the user/assistant turns as given."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    text = "\n\n".join([instruction, *system, "Sources:\n" + source_block(sources)])
    return [{"role": "system", "content": text}, *turns]
