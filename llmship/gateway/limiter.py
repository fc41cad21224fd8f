"""Per-key limits: requests/min, tokens/min and parallel requests, with OpenAI's headers.

Requests and tokens are counted with the ``limits`` library's sliding-window counter (the smooth limit OpenAI's
docs describe, without a fixed window's double burst at the boundary), in the storage ``limits_storage`` names:
``memory://`` per process, ``redis://…`` shared by every replica. Tokens are reserved up front — the prompt plus
``max_tokens`` × ``n``, as OpenAI's limiter counts them — and settled when the request ends: an answer shorter
than its reservation gives the difference back to the window it was taken from, a longer one (a request without
``max_tokens``) is charged the rest. Parallel requests are a per-process counter (a count of open streams only
means something where they run).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from llmship.errors import RateLimited
from llmship.gateway.keys import ApiKey

WINDOW_S = 60


def _reset(seconds: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``250ms``."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    minutes, secs = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass
class Admission:
    """A request let through: what it reserved, and the headers that tell the client where it stands."""

    key: ApiKey
    tokens: int = 0
    token_window: str | None = None  # the storage key the reservation went into, for the refund
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    parallel: bool = False


class KeyLimiter:
    def __init__(self, storage_uri: str = "memory://") -> None:
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        # Any: the async storages have sliding_window_keys/decr, which the union type storage_from_string returns lacks
        self.storage: Any = storage_from_string(uri)
        self.window = SlidingWindowCounterRateLimiter(self.storage)
        self._parallel: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def admit(self, key: ApiKey, tokens: int) -> Admission:
        """Take one request and ``tokens`` from the key's budgets, or raise ``RateLimited`` (429, Retry-After)."""
        admission = Admission(key=key, tokens=tokens)
        if key.max_parallel is not None:
            async with self._lock:
                if self._parallel.get(key.id, 0) >= key.max_parallel:
                    raise RateLimited(f"Too many parallel requests for the key {key.name!r}: at most "
                                      f"{key.max_parallel} at once", retry_after=1, code="too_many_parallel_requests")
                self._parallel[key.id] = self._parallel.get(key.id, 0) + 1
                admission.parallel = True
        try:
            await self._take(admission)
        except BaseException:
            self._leave(admission)
            raise
        return admission

    async def _take(self, admission: Admission) -> None:
        key, tokens = admission.key, admission.tokens
        if key.rpm is not None:
            item = RateLimitItemPerMinute(key.rpm)
            if not await self.window.hit(item, key.id, "requests"):
                raise RateLimited(f"Rate limit reached for the key {key.name!r} on requests per min: limit "
                                  f"{key.rpm}", retry_after=await self._retry_after(item, key.id, "requests"),
                                  headers=await self._headers(key), code="rate_limit_exceeded")
        if key.tpm is not None and tokens > 0:
            item = RateLimitItemPerMinute(key.tpm)
            if tokens > key.tpm:
                raise RateLimited(f"Request too large for the key {key.name!r} on tokens per min: limit {key.tpm}, "
                                  f"requested {tokens}; lower max_tokens or the prompt", retry_after=WINDOW_S,
                                  headers=await self._headers(key), code="rate_limit_exceeded")
            now = time.time()
            if not await self.window.hit(item, key.id, "tokens", cost=tokens):
                raise RateLimited(f"Rate limit reached for the key {key.name!r} on tokens per min: limit {key.tpm}, "
                                  f"requested {tokens}", retry_after=await self._retry_after(item, key.id, "tokens"),
                                  headers=await self._headers(key), code="rate_limit_exceeded")
            admission.token_window = self.storage.sliding_window_keys(item.key_for(key.id, "tokens"), WINDOW_S,
                                                                      now)[1]
        admission.headers = await self._headers(key)

    async def settle(self, admission: Admission, used: int | None) -> None:
        """Give back the unused part of the reservation (or charge the excess); ``used`` None: keep it as is."""
        self._leave(admission)
        key = admission.key
        if used is None or key.tpm is None:
            return
        if admission.token_window is not None and used < admission.tokens:
            await self.storage.decr(admission.token_window, admission.tokens - used)
        elif used > admission.tokens:
            item = RateLimitItemPerMinute(key.tpm)
            current = self.storage.sliding_window_keys(item.key_for(key.id, "tokens"), WINDOW_S, time.time())[1]
            await self.storage.incr(current, 2 * WINDOW_S, amount=used - admission.tokens)

    def _leave(self, admission: Admission) -> None:
        if admission.parallel:
            admission.parallel = False
            left = self._parallel.get(admission.key.id, 1) - 1
            if left > 0:
                self._parallel[admission.key.id] = left
            else:
                self._parallel.pop(admission.key.id, None)

    async def _retry_after(self, item: RateLimitItemPerMinute, *ids: str) -> int:
        stats = await self.window.get_window_stats(item, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _headers(self, key: ApiKey) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        now = time.time()
        for kind, limit in (("requests", key.rpm), ("tokens", key.tpm)):
            if limit is None:
                continue
            stats = await self.window.get_window_stats(RateLimitItemPerMinute(limit), key.id, kind)
            out += [(f"x-ratelimit-limit-{kind}".encode(), str(limit).encode()),
                    (f"x-ratelimit-remaining-{kind}".encode(), str(max(0, stats.remaining)).encode()),
                    (f"x-ratelimit-reset-{kind}".encode(), _reset(stats.reset_time - now).encode())]
        return out
