"""Prometheus series named like vLLM's (``vllm:*`` becomes ``llmship:*``), so existing dashboards carry over.

Standalone (tests, the in-process benchmark) the series live in a private
registry that the app exposes at its own ``/metrics``. Inside a Bento
(``shared=True``) they go to prometheus_client's process-global registry,
which BentoML's multi-process ``/metrics`` endpoint collects next to its own
series. BentoML workers set ``PROMETHEUS_MULTIPROC_DIR`` only after the
service module is imported, so prometheus_client is imported here lazily, and
re-checked, or the values would stay in single-process memory and never show.
"""

from __future__ import annotations

import os
from typing import Any

# Buckets from vLLM's metrics.py (seconds), so p50/p99 panels line up with vLLM's.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0)


class ServingMetrics:
    """The request-level series one model server exports."""

    def __init__(self, model_name: str, *, shared: bool = False) -> None:
        import prometheus_client as factory
        from prometheus_client import values

        if shared and "PROMETHEUS_MULTIPROC_DIR" in os.environ and values.ValueClass is values.MutexValue:
            values.ValueClass = values.get_value_class()  # imported before the worker set the directory
        self.registry = None if shared else factory.CollectorRegistry()
        extra: dict[str, Any] = {"registry": self.registry} if self.registry is not None else {}
        labels = ["model_name"]

        def histogram(name: str, doc: str, buckets: tuple[float, ...]):
            return factory.Histogram(name, doc, labels, buckets=buckets, **extra).labels(model_name)

        def counter(name: str, doc: str):
            return factory.Counter(name, doc, labels, **extra).labels(model_name)

        def gauge(name: str, doc: str):
            return factory.Gauge(name, doc, labels, multiprocess_mode="livesum", **extra).labels(model_name)

        self.ttft = histogram("llmship:time_to_first_token_seconds", "Time to first token.", TTFT_BUCKETS)
        self.itl = histogram("llmship:inter_token_latency_seconds", "Time between two streamed tokens.", ITL_BUCKETS)
        self.e2e = histogram("llmship:e2e_request_latency_seconds", "End-to-end request latency.", E2E_BUCKETS)
        self.running = gauge("llmship:num_requests_running", "Requests in the running batch.")
        self.waiting = gauge("llmship:num_requests_waiting", "Requests queued for a batch slot.")
        # prometheus_client appends _total to counters; the exposed names are exactly vLLM's shape.
        self.prompt_tokens = counter("llmship:prompt_tokens", "Prefill tokens processed.")
        self.generation_tokens = counter("llmship:generation_tokens", "Generation tokens produced.")
        self._success = factory.Counter("llmship:request_success", "Requests finished, by finish reason.",
                                        ["model_name", "finished_reason"], **extra)
        self._model = model_name

    def success(self, finished_reason: str) -> None:
        self._success.labels(self._model, finished_reason).inc()

    def queue(self, running: int, waiting: int) -> None:
        self.running.set(running)
        self.waiting.set(waiting)

    def exposition(self) -> bytes:
        """The text format of the private registry (empty inside a Bento, where BentoML serves /metrics)."""
        import prometheus_client

        return prometheus_client.generate_latest(self.registry) if self.registry is not None else b""
