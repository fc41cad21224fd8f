"""A persistent embedding cache: (model id, content hash) → float32 vector, in one SQLite file.

Embedding is the expensive part of a refresh (~200 chunks/s on one core); everything else is cheap. Keyed by
the sha256 of the chunk text and the embedding model's id, the cache makes a re-run over an unchanged corpus
embed nothing, a run after an edit embed only the chunks whose text changed, and a model change miss
everywhere (vectors of two models never mix). Vectors are stored as little-endian float32 blobs with their
dimension. WAL mode: a reader (the retriever) and the refresh can use the file at the same time.
Default location: ``LLMSHIP_HOME/knowledge/embeddings.sqlite`` (``default_cache_path()``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, Self

import numpy as np

from llmship.errors import LlmshipError

_MAX_PARAMS = 900  # SQLite's default limit on bound parameters is 999 (older builds)


def default_cache_path() -> Path:
    from llmship.paths import sub

    return sub("knowledge") / "embeddings.sqlite"


class _Embeds(Protocol):
    model_id: str

    def embed(self, texts: list[str]): ...  # returns an object with ``.vectors`` (n × d float32)


class EmbeddingCache:
    """``get_many``/``put_many`` over a SQLite file; use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model_id TEXT NOT NULL, hash TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vector BLOB NOT NULL, created REAL NOT NULL, "
                "PRIMARY KEY (model_id, hash)) WITHOUT ROWID")
            self._db.commit()
        except sqlite3.DatabaseError as err:
            raise LlmshipError(f"cannot open the embedding cache {self.path}: {err}") from err

    def get_many(self, model_id: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes`` (missing ones are simply absent from the result)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(wanted), _MAX_PARAMS):
                part = wanted[start:start + _MAX_PARAMS]
                rows = self._db.execute(
                    f"SELECT hash, dim, vector FROM embeddings WHERE model_id = ? AND hash IN "
                    f"({','.join('?' * len(part))})", [model_id, *part]).fetchall()
                for digest, dim, blob in rows:
                    found[digest] = np.frombuffer(blob, dtype="<f4").reshape(dim).astype(np.float32)
        return found

    def put_many(self, model_id: str, items: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]) -> int:
        """Store (hash, vector) pairs (replacing any); returns how many were written."""
        pairs = items.items() if isinstance(items, Mapping) else items
        now = time.time()
        rows = []
        for digest, vector in pairs:
            vec = np.asarray(vector, dtype="<f4")
            if vec.ndim != 1:
                raise LlmshipError(f"embedding for {digest} is not a vector (shape {vec.shape})")
            rows.append((model_id, digest, int(vec.shape[0]), vec.tobytes(), now))
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def count(self, model_id: str | None = None) -> int:
        with self._lock:
            if model_id is None:
                return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def embed_with_cache(embedder: _Embeds, texts_by_hash: Mapping[str, str], batch_size: int = 64, *,
                     cache: EmbeddingCache, progress: bool | None = None) -> tuple[dict[str, np.ndarray],
                                                                                   dict[str, int]]:
    """Vectors for every text (keyed by its hash), embedding only what ``cache`` lacks for this model.

    Misses are embedded ``batch_size`` at a time and stored after each batch, so an interrupted run keeps
    what it finished. A tqdm bar shows when there is more than one batch (``progress`` forces it on/off).
    Returns ``(vectors_by_hash, {"hits", "misses", "embedded"})``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    model_id = embedder.model_id
    vectors = cache.get_many(model_id, texts_by_hash)
    misses = [h for h in texts_by_hash if h not in vectors]
    batches = [misses[i:i + batch_size] for i in range(0, len(misses), batch_size)]
    show = len(batches) > 1 if progress is None else progress
    embedded = 0
    bar = None
    if show and batches:
        from tqdm import tqdm

        bar = tqdm(total=len(misses), desc=f"embedding ({model_id})", unit="chunk", leave=False)
    try:
        for batch in batches:
            out = embedder.embed([texts_by_hash[h] for h in batch]).vectors
            fresh = dict(zip(batch, (np.asarray(v, dtype=np.float32) for v in out), strict=True))
            cache.put_many(model_id, fresh)
            vectors.update(fresh)
            embedded += len(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    stats = {"hits": len(texts_by_hash) - len(misses), "misses": len(misses), "embedded": embedded}
    return {h: vectors[h] for h in texts_by_hash}, stats
