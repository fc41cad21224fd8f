"""Sources given to the model, and which of them an answer cites.

The prompt numbers the sources ``[1]..[n]`` and asks for those markers. ``cite`` reads them back: a source
is cited when the answer names its marker (``[2]``, ``[1, 3]``, ``[1][3]``). Small models often answer
without markers, so when an answer has none, a source counts as cited when the answer copies it — it
shares a run of ``OVERLAP_WORDS`` consecutive words with it, or holds every content word of a short answer
("Ashkirk.") — and ``cited_by`` says which rule applied. Answers citing nothing leave every source
``cited=False``; the eval counts those as uncited, never as right.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

OVERLAP_WORDS = 5
SHORT_ANSWER_WORDS = 4
_MARKER = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")
_WORD = re.compile(r"\w+")
_STOP = frozenset(("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is", "it",
                   "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "with", "i", "you", "we",
                   "they", "not", "no", "do", "does", "did"))


class Citation(BaseModel):
    """One source of a RAG answer (the ``citations`` list of the response, in prompt order)."""

    index: int  # the source's marker number in the prompt, [index]
    doc_id: str
    chunk_id: str
    title: str | None = None
    score: float
    scores: dict[str, float] = {}
    text: str
    start_char: int | None = None  # the chunk's span in its document's text
    end_char: int | None = None
    cited: bool = False
    cited_by: Literal["marker", "overlap"] | None = None


def markers(answer: str) -> set[int]:
    """Every source number the answer names in square brackets."""
    found: set[int] = set()
    for group in _MARKER.findall(answer):
        found.update(int(n) for n in re.findall(r"\d+", group))
    return found


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _copies(answer_words: list[str], source: str) -> bool:
    src = _words(source)
    content = [w for w in answer_words if w not in _STOP]
    if not content:
        return False
    if len(answer_words) <= SHORT_ANSWER_WORDS:
        vocab = set(src)
        return all(w in vocab for w in content)
    grams = {tuple(src[i:i + OVERLAP_WORDS]) for i in range(len(src) - OVERLAP_WORDS + 1)}
    return any(tuple(answer_words[i:i + OVERLAP_WORDS]) in grams
               for i in range(len(answer_words) - OVERLAP_WORDS + 1))


def cite(answer: str, sources: Sequence[Citation]) -> list[Citation]:
    """``sources`` with ``cited``/``cited_by`` set for ``answer`` (new objects; see the module docstring)."""
    named = markers(answer) & {s.index for s in sources}
    if named:
        return [s.model_copy(update={"cited": s.index in named, "cited_by": "marker" if s.index in named else None})
                for s in sources]
    words = _words(answer)
    out = []
    for s in sources:
        hit = _copies(words, s.text)
        out.append(s.model_copy(update={"cited": hit, "cited_by": "overlap" if hit else None}))
    return out
