"""API keys: created once, stored only as a salted hash, checked on every request.

A key reads ``sk-llmship-<id>-<secret>``: ``id`` (8 hex characters) finds the row without a scan, ``secret`` (32
random bytes, URL-safe) is never stored — only ``sha256(salt ‖ secret)`` with a per-key random salt, compared in
constant time. 256 random bits need no slow hash (a password does; a random token does not: GitHub and Stripe
store tokens the same way), so verifying costs microseconds per request.

The store is SQLite under ``LLMSHIP_HOME/gateway/keys.db`` (0600): names are unique, revoked keys stay listed
(with ``revoked_at``) for the audit trail, and ``rotate`` issues a new secret under the same name and limits while
the old one stops working at once. Usage (requests, tokens, last use) is counted per key.

A store the process cannot write (a Kubernetes Secret volume is mounted read-only) is opened read-only
(``immutable``: a WAL-mode database could not be opened otherwise, it would need its ``-shm`` file) and reopened
when the file changes (the kubelet swaps a Secret's files when the Secret is updated), so new, rotated and revoked
keys take effect without a restart. There usage is not counted (the audit log and the gateway's
``llmship:gateway_requests_total`` have it) and managing keys is an error: manage them in a local copy.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from llmship import paths
from llmship.errors import AuthenticationError, KeyRequestError, PermissionDenied

PREFIX = "sk-llmship-"
_KEY = re.compile(r"^sk-llmship-([0-9a-f]{8})-([A-Za-z0-9_-]{20,})$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, salt BLOB NOT NULL, hash BLOB NOT NULL,
    created_at REAL NOT NULL, expires_at REAL, revoked_at REAL,
    rpm INTEGER, tpm INTEGER, max_parallel INTEGER, models TEXT, max_tokens INTEGER,
    requests INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0, last_used_at REAL
)
"""


class ApiKey(BaseModel):
    """What is known about a key (never its secret)."""

    id: str
    name: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)  # the most one request may generate
    models: list[str] | None = None  # None: every model; entries may be patterns (``rag:*``)
    requests: int = 0
    tokens: int = 0
    last_used_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > time.time())

    def allows(self, model: str) -> bool:
        return self.models is None or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` → seconds."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise KeyRequestError(f"bad duration {text!r}: use a positive number with s, m, h, d or w (e.g. 30d)",
                        param="expires")
    return int(match.group(1)) * _UNITS[match.group(2)]


def default_path() -> Path:
    """Where the services and ``llmship keys`` find the store unless ``keys_db`` says otherwise."""
    return paths.sub("gateway") / "keys.db"


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


class KeyStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self._lock = threading.Lock()
        self._identity: tuple[int, ...] = ()
        self.read_only = self.path.exists() and not (os.access(self.path, os.W_OK)
                                                     and os.access(self.path.parent, os.W_OK))
        if self.read_only:
            self._db = self._open_read_only()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a process crash, one fsync less
        self._db.execute(_SCHEMA)
        if new:
            os.chmod(self.path, 0o600)

    def _open_read_only(self) -> sqlite3.Connection:
        stat = self.path.stat()  # follows a Secret volume's symlink to the current version of the file
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        self._identity = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return db

    def _reader(self) -> sqlite3.Connection:
        """The connection to read through: for a read-only store, reopened when the file was replaced."""
        if self.read_only:
            try:
                stat = self.path.stat()
                changed = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size) != self._identity
            except OSError:
                changed = False  # mid-swap: keep the keys we have
            if changed:
                with self._lock:
                    self._db = self._open_read_only()  # the old connection closes when the last reader drops it
        return self._db

    def _writable(self) -> None:
        if self.read_only:
            raise KeyRequestError(f"the key store {self.path} is read-only (a mounted Secret?): manage keys in a "
                                  "local copy and update the Secret from it")

    def close(self) -> None:
        self._db.close()

    # ---- management ---------------------------------------------------------------------------------------------

    def create(self, name: str, *, rpm: int | None = None, tpm: int | None = None, max_parallel: int | None = None,
               models: list[str] | None = None, expires_in_s: float | None = None,
               max_tokens: int | None = None) -> tuple[ApiKey, str]:
        """A new key: its record and the plaintext key, which is shown this once and never stored."""
        self._writable()
        name = name.strip()
        if not name:
            raise KeyRequestError("a key needs a name", param="name")
        for label, value in (("rpm", rpm), ("tpm", tpm), ("max_parallel", max_parallel),
                             ("max_tokens", max_tokens)):
            if value is not None and value < 1:
                raise KeyRequestError(f"{label} must be at least 1", param=label)
        key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
        now = time.time()
        record = ApiKey(id=key_id, name=name, created_at=now, rpm=rpm, tpm=tpm, max_parallel=max_parallel,
                        max_tokens=max_tokens,
                        models=sorted(set(models)) if models else None,
                        expires_at=now + expires_in_s if expires_in_s else None)
        with self._lock:
            # a revoked key gives its name up (renamed "<name>~revoked-<id>", kept for the audit trail and `keys
            # list`): names are unique among keys that can still work, as in OpenAI's and LiteLLM's key lists
            self._db.execute("UPDATE keys SET name = name || '~revoked-' || id WHERE name = ? AND revoked_at IS NOT NULL",
                             (name,))
            try:
                self._db.execute(
                    "INSERT INTO keys (id, name, salt, hash, created_at, expires_at, rpm, tpm, max_parallel, models, "
                    "max_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key_id, name, salt, _digest(salt, secret), now, record.expires_at, rpm, tpm, max_parallel,
                     json.dumps(record.models) if record.models is not None else None, max_tokens))
            except sqlite3.IntegrityError:
                raise KeyRequestError(f"a key named {name!r} exists; revoke or rotate it", param="name") from None
        return record, f"{PREFIX}{key_id}-{secret}"

    def get(self, name: str) -> ApiKey:
        row = self._reader().execute("SELECT * FROM keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyRequestError(f"no key named {name!r}", param="name")
        return _record(row)

    def list(self) -> list[ApiKey]:
        return [_record(r) for r in self._reader().execute("SELECT * FROM keys ORDER BY created_at, name")]

    def revoke(self, name: str) -> ApiKey:
        self._writable()
        record = self.get(name)
        if record.revoked_at is None:
            with self._lock:
                self._db.execute("UPDATE keys SET revoked_at = ? WHERE id = ?", (time.time(), record.id))
        return self.get(name)

    def rotate(self, name: str) -> tuple[ApiKey, str]:
        """A new secret (and id) under the same name and limits; the old key stops working now."""
        self._writable()
        old = self.get(name)
        if old.revoked_at is not None:
            raise KeyRequestError(f"the key {name!r} is revoked; create a new one", param="name")
        key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
        with self._lock:
            self._db.execute("UPDATE keys SET id = ?, salt = ?, hash = ?, created_at = ? WHERE id = ?",
                             (key_id, salt, _digest(salt, secret), time.time(), old.id))
        return self.get(name), f"{PREFIX}{key_id}-{secret}"

    def issue(self, name: str, **limits: object) -> tuple[ApiKey, str]:
        """A fresh secret for a service's own key (``deploy`` gives the RAG service one for the chat model): a
        new key the first time, a rotation after that, so each deploy invalidates the last one's secret."""
        try:
            existing = self.get(name)
        except KeyRequestError:
            return self.create(name, **limits)  # type: ignore[arg-type]
        if existing.revoked_at is not None:
            raise KeyRequestError(f"the key {name!r} is revoked; delete the name or pick another", param="name")
        return self.rotate(name)

    # ---- requests -----------------------------------------------------------------------------------------------

    def verify(self, key: str | None, model: str | None = None) -> ApiKey:
        """The key's record, or ``AuthenticationError`` (401: missing, malformed, unknown, revoked, expired) /
        ``PermissionDenied`` (403: the model is not allowed). Messages never echo the key."""
        if not key:
            raise AuthenticationError("Missing API key: send it as 'Authorization: Bearer <key>'")
        match = _KEY.match(key.strip())
        row = self._reader().execute("SELECT * FROM keys WHERE id = ?", (match.group(1),)).fetchone() \
            if match else None
        if row is None or match is None or not hmac.compare_digest(bytes(row["hash"]),
                                                                   _digest(bytes(row["salt"]), match.group(2))):
            raise AuthenticationError("Incorrect API key provided")
        record = _record(row)
        if record.revoked_at is not None:
            raise AuthenticationError(f"The API key {record.name!r} has been revoked")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise AuthenticationError(f"The API key {record.name!r} has expired")
        if model is not None and not record.allows(model):
            raise PermissionDenied(f"The API key {record.name!r} may not use the model {model!r}", param="model")
        return record

    def record_usage(self, key_id: str, tokens: int, requests: int = 1) -> None:
        if self.read_only:
            return  # a mounted Secret: usage is in the audit log and the gateway's metrics
        with self._lock:
            self._db.execute("UPDATE keys SET requests = requests + ?, tokens = tokens + ?, last_used_at = ? "
                             "WHERE id = ?", (requests, max(0, int(tokens)), time.time(), key_id))


def _record(row: sqlite3.Row) -> ApiKey:
    data = dict(row)
    data.pop("salt"), data.pop("hash")
    data["models"] = json.loads(data["models"]) if data["models"] else None
    return ApiKey.model_validate(data)
