"""The gateway's Prometheus counter: every request it finishes, by service, key and HTTP status.

``llmship:gateway_requests_total{service, key_name, code}`` (``key_name`` is ``-`` when no key was verified: auth
off, a public route, or a 401) is what the dashboard's "4xx/5xx by key" panel reads, and what replaces the key
store's usage columns where the store is a read-only Secret. Probes (``/livez``, ``/readyz``) are not counted.

One counter per process in prometheus_client's global registry, where vLLM's engine keeps its ``vllm:*`` series
too. Inside a Bento, BentoML sets ``PROMETHEUS_MULTIPROC_DIR`` only after the service module is imported, so
prometheus_client is imported on first use and its value class re-checked (as ``llmship.engine.vllm`` does before
vLLM creates its series); BentoML's ``/metrics`` then collects the counter from every worker next to vLLM's series
and its own.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

NAME = "llmship:gateway_requests"  # prometheus_client exposes a counter as <name>_total
LABELS = ("service", "key_name", "code")
NO_KEY = "-"

_counter: Any = None
_lock = threading.Lock()


def requests_counter() -> Any:
    """The process's counter, created on first use (after a BentoML worker has set up multiprocess mode)."""
    global _counter
    if _counter is None:
        with _lock:
            if _counter is None:
                import prometheus_client
                from prometheus_client import values

                if "PROMETHEUS_MULTIPROC_DIR" in os.environ and values.ValueClass is values.MutexValue:
                    values.ValueClass = values.get_value_class()  # imported before the worker set the directory
                _counter = prometheus_client.Counter(NAME, "Requests the gateway finished, by service, key and "
                                                     "HTTP status.", list(LABELS))
    return _counter


def count_request(service: str, key_name: str | None, status: int) -> None:
    """Count one finished request; never raises (a metrics failure must not fail a request)."""
    try:
        requests_counter().labels(service, key_name or NO_KEY, str(status)).inc()
    except Exception:  # a metrics failure must not fail a request
        log.exception("could not count the request")
