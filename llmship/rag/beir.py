"""A BEIR-format folder as llmship documents, queries and relevance judgements.

BEIR (Thakur et al., 2021) is the format retrieval benchmarks ship in: ``corpus.jsonl`` (``_id``, ``title``,
``text`` per line), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``,
``corpus-id``, ``score``; BEIR writes a header line, other tools do not). ``load_beir`` reads one into
``Document``s whose ids are ``<collection>/<corpus id>`` — the BEIR id is kept, so a retrieved chunk's document
is scored against the qrels as it is — and whose text is the title (when there is one) as its own paragraph,
then the text, as BEIR's dense baselines embed them. Queries without a judgement in the split are dropped, as
BEIR's evaluation does. Anything missing or malformed is one ``LlmshipError`` line naming the file and line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from llmship.errors import LlmshipError
from llmship.knowledge.ingest.documents import Document, normalise_text, text_hash


class BeirError(LlmshipError):
    """A BEIR folder that cannot be read as one."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_beir_folder"


class BeirDataset(BaseModel):
    """One BEIR split: documents under ``collection``, the judged queries and their qrels."""

    model_config = ConfigDict(frozen=True)
    name: str
    folder: str
    split: str
    collection: str
    documents: list[Document]
    queries: dict[str, str]  # query id -> text, only queries with a judgement in the split
    qrels: dict[str, dict[str, int]]  # query id -> corpus id -> grade

    def corpus_id(self, doc_id: str) -> str:
        """The BEIR id of a document id (``<collection>/<corpus id>``)."""
        return doc_id.removeprefix(self.collection + "/")


def collection_name(folder: Path) -> str:
    """``beir-<folder name>``, lower-cased, with anything but letters, digits, ``-`` and ``_`` as ``-``."""
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in folder.name.lower()).strip("-")
    return f"beir-{name or 'dataset'}"


def load_beir(folder: str | Path, split: str = "test", *, collection: str | None = None) -> BeirDataset:
    """Read ``folder`` (see the module docstring); ``collection`` defaults to ``collection_name(folder)``."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise BeirError(f"BEIR folder {root} does not exist or is not a folder")
    coll = collection or collection_name(root)
    if not coll or "/" in coll or "#" in coll:
        raise BeirError(f"collection {coll!r} must be a non-empty name without '/' or '#'")
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    queries_all = {row["_id"]: str(row.get("text") or "") for row in _jsonl(root / "queries.jsonl", ("_id", "text"))}
    missing = sorted(q for q in qrels if q not in queries_all)
    if missing:
        raise BeirError(f"{root / 'qrels' / f'{split}.tsv'} judges {len(missing)} queries that queries.jsonl lacks "
                        f"(first: {missing[0]!r})")
    documents = []
    seen: set[str] = set()
    for row in _jsonl(root / "corpus.jsonl", ("_id", "text")):
        cid = row["_id"]
        if cid in seen:
            raise BeirError(f"{root / 'corpus.jsonl'}: corpus id {cid!r} appears twice")
        seen.add(cid)
        title = " ".join(str(row.get("title") or "").split())
        text = normalise_text("\n\n".join(p for p in (title, str(row.get("text") or "")) if p.strip()))
        if not text:
            continue  # an empty document cannot be retrieved; BEIR keeps it only as a never-relevant id
        documents.append(Document(id=f"{coll}/{cid}", path=f"{root / 'corpus.jsonl'}#{cid}",
                                  title=title or cid, text=text, hash=text_hash(text), format="text"))
    if not documents:
        raise BeirError(f"{root / 'corpus.jsonl'} holds no documents with text")
    queries = {q: queries_all[q] for q in sorted(qrels)}
    return BeirDataset(name=root.name, folder=str(root), split=split, collection=coll, documents=documents,
                       queries=queries, qrels=qrels)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id  corpus-id  score`` per line (tab-separated), with or without BEIR's header line; a TREC qrels
    line (``qid 0 docid score``, four columns) is read too. Grades ≤ 0 are kept (pytrec_eval ignores them)."""
    if not path.is_file():
        raise BeirError(f"no relevance judgements at {path} (a BEIR folder has qrels/<split>.tsv)")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            fields = [f.strip() for f in row]
            if not fields or not any(fields):
                continue
            if number == 1 and fields[0].lower() in ("query-id", "query_id", "qid"):
                continue  # BEIR's header
            if len(fields) == 4:
                fields = [fields[0], fields[2], fields[3]]
            if len(fields) != 3:
                raise BeirError(f"{path}:{number}: expected query-id, corpus-id, score; got {len(fields)} fields")
            try:
                grade = int(float(fields[2]))
            except ValueError:
                raise BeirError(f"{path}:{number}: score {fields[2]!r} is not a number") from None
            qrels.setdefault(fields[0], {})[fields[1]] = grade
    if not qrels:
        raise BeirError(f"{path} holds no judgements")
    return qrels


def _jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise BeirError(f"no {path.name} in {path.parent} (a BEIR folder has corpus.jsonl and queries.jsonl)")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise BeirError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise BeirError(f"{path}:{number}: a line needs {', '.join(required)}")
            row["_id"] = str(row["_id"])
            rows.append(row)
    return rows
