"""One structured line per request: who (key name and id), what (model, path), cost (tokens), outcome (status,
error code) and latency — never the key, and the prompt only when ``audit_prompts`` asks for it.

Lines go to a JSON-lines file (0600, appended; every service process writes whole lines with one ``write``) and
to the ``llmship.audit`` logger, so a log shipper can take them from either.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("llmship.audit")


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        log.info(line)
        if self._fd is not None:
            with self._lock:
                os.write(self._fd, (line + "\n").encode("utf-8", "backslashreplace"))  # lone surrogates too

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
