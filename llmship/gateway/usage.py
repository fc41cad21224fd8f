"""How a service tells the gateway what a request really cost.

The gateway reserves tokens before a request (prompt + ``max_tokens``) and settles them with the true count when
it ends; only the app knows that count, and for a stream only once the last token is out. A context variable
carries a per-request ``Usage`` from the gateway to the app (tasks the request spawns share it), so the apps need
no reference to the gateway and work the same without one (``report_usage`` is then a no-op).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


current: ContextVar[Usage | None] = ContextVar("llmship_gateway_usage", default=None)


def report_usage(prompt_tokens: int, completion_tokens: int = 0) -> None:
    """Record the request's token usage (the last report wins: a stream reports once, at its end)."""
    usage = current.get()
    if usage is not None:
        usage.prompt_tokens, usage.completion_tokens = int(prompt_tokens), int(completion_tokens)
        usage.reported = True
