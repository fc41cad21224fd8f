"""Server-side conversations: a client sends only the new turn with a ``session_id``.

LMDeploy users know this as ``/v1/chat/interactive``; here it is an optional
field on the ordinary chat route, so every OpenAI client keeps working. The
store is bounded twice — by count (least recently used goes first) and by idle
time — because sessions are memory that clients create for free. A session
serves one request at a time: a second concurrent turn would interleave the
history, so it gets 409 instead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from llmship.errors import LlmshipError


class SessionNotFound(LlmshipError):
    status = 404
    type = "invalid_request_error"
    code = "session_not_found"


class SessionBusy(LlmshipError):
    status = 409
    type = "invalid_request_error"
    code = "session_busy"


@dataclass
class Session:
    id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    busy: bool = False


class SessionStore:
    def __init__(self, max_sessions: int = 1024, ttl_s: float = 1800.0) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def _expire(self) -> None:
        cutoff = time.time() - self.ttl_s
        for sid in [sid for sid, s in self._sessions.items() if s.last_used < cutoff and not s.busy]:
            del self._sessions[sid]

    def get(self, session_id: str) -> Session:
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no session {session_id!r} (it may have expired)", param="session_id")
        return session

    def begin(self, session_id: str) -> Session:
        """Open (or create) a session for one turn; ``end`` must follow."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            while len(self._sessions) >= self.max_sessions:
                oldest = next((sid for sid, s in self._sessions.items() if not s.busy), None)
                if oldest is None:
                    raise SessionBusy("every session slot is in use; retry later", param="session_id")
                del self._sessions[oldest]
            session = self._sessions[session_id] = Session(session_id)
        if session.busy:
            raise SessionBusy(f"session {session_id!r} is answering another request", param="session_id")
        session.busy = True
        self._sessions.move_to_end(session_id)
        return session

    def end(self, session: Session, new_messages: list[dict[str, Any]] | None) -> None:
        """Close a turn; ``new_messages`` (the turn and the reply) are kept only when it succeeded."""
        session.busy = False
        session.last_used = time.time()
        if new_messages:
            session.messages.extend(new_messages)

    def delete(self, session_id: str) -> None:
        self.get(session_id)
        del self._sessions[session_id]

    def expires_at(self, session: Session) -> float:
        return session.last_used + self.ttl_s
