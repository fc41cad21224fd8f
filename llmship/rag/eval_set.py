"""The labelled retrieval/QA question set over the Vellmark demo corpus (``data/eval/rag_questions.jsonl``).

One JSON object per line (built by ``data/eval/make_rag_questions.py``): a question, its short answer, the
document holding the answer (``doc_id``, an id given by ``load_documents("data/corpus/docs")``) and ``gold``, a
verbatim span of that document's loaded text that contains the answer. Two-hop questions (``hops == 2``) also
name ``via_doc_id``, the document that leads from the entity in the question to the one holding the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmship.errors import LlmshipError
from llmship.paths import REPO_ROOT

DEFAULT_PATH = Path("data") / "eval" / "rag_questions.jsonl"


class RagQuestion(BaseModel):
    """One labelled question; ``gold`` is a verbatim span of ``doc_id``'s loaded text containing ``answer``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    doc_id: str = Field(min_length=1)
    gold: str = Field(min_length=20, max_length=200)
    kind: str = Field(min_length=1)
    hops: Literal[1, 2] = 1
    via_doc_id: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RagQuestion:
        if self.answer.lower() not in self.gold.lower():
            raise ValueError("answer does not occur in gold")
        if (self.hops == 2) != (self.via_doc_id is not None):
            raise ValueError("via_doc_id is required for two-hop questions and only for them")
        return self


def load_questions(path: str | Path | None = None) -> list[RagQuestion]:
    """Every question in ``path`` (default ``data/eval/rag_questions.jsonl`` in the checkout), in file order.

    Blank lines are ignored; a line that is not a JSON object matching ``RagQuestion`` raises ``LlmshipError``
    naming the file and line number.
    """
    file = Path(path).expanduser() if path is not None else REPO_ROOT / DEFAULT_PATH
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise LlmshipError(f"cannot read question set {file}: {err}") from None
    questions: list[RagQuestion] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            questions.append(RagQuestion.model_validate(json.loads(line)))
        except json.JSONDecodeError as err:
            raise LlmshipError(f"{file}:{number}: malformed question line: invalid JSON ({err.msg})") from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "line"
            raise LlmshipError(f"{file}:{number}: malformed question line: {where}: {first['msg']} "
                               f"({err.error_count()} error(s))") from None
    return questions
