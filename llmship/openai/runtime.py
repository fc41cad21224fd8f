"""What the HTTP layer serves: one loaded engine, its registry identity, and the scheduler in front of it.

Requests go to a continuous-batching ``Scheduler`` (one worker thread owns the
model); each request reads its tokens from its own asyncio queue, so the event
loop never blocks on the model and a slow client only fills its own queue. At
most ``max_waiting`` requests wait for a batch slot; the next gets 503 with
``Retry-After``. A client that disconnects mid-stream cancels its request,
which leaves the batch before the next decode step. The metrics are recorded
here, where arrival, first token and finish are all visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from llmship.engine.base import Completion, Engine, SamplingParams, StepOutput, TokenLogprob
from llmship.engine.scheduler import Scheduler, SchedulerStats
from llmship.serving.metrics import ServingMetrics


@dataclass
class ServedModel:
    engine: Engine
    model_id: str
    version: str  # "<registered name>/<version>", sent as x-llmship-model-version
    backend: str
    created: int = field(default_factory=lambda: int(time.time()))


class Runtime:
    def __init__(self, served: ServedModel, *, max_waiting: int = 64, max_batch: int = 16,
                 max_prefill_tokens: int = 4096, shared_metrics: bool = False) -> None:
        self.served = served
        self.metrics = ServingMetrics(served.model_id, shared=shared_metrics)
        self.scheduler = Scheduler(served.engine, max_batch=max_batch, max_waiting=max_waiting,
                                   max_prefill_tokens=max_prefill_tokens, on_change=self.metrics.queue).start()

    @property
    def max_waiting(self) -> int:
        return self.scheduler.max_waiting

    def stats(self) -> SchedulerStats:
        return self.scheduler.stats()

    def submit(self, prompt: list[int], params: SamplingParams) -> TokenStream:
        """Queue a request now (so a full queue or a bad prompt fails before any response is sent)."""
        return TokenStream(self, prompt, params)

    async def stream(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[StepOutput]:
        """Yield the request's step outputs as the scheduler produces them; closing the iterator cancels it."""
        tokens = self.submit(prompt, params)
        try:
            async for item in tokens:
                yield item
        finally:
            tokens.close()

    async def complete(self, prompt: list[int], params: SamplingParams) -> Completion:
        """Run a request to the end and return its text, tokens, usage and (when asked) logprobs."""
        return await self.submit(prompt, params).collect()

    def close(self, drain_timeout_s: float = 30.0) -> None:
        self.scheduler.close(drain_timeout_s)


class TokenStream:
    """One submitted request as an async iterator of ``StepOutput``; ``close()`` before the end cancels it."""

    def __init__(self, runtime: Runtime, prompt: list[int], params: SamplingParams) -> None:
        self._metrics = runtime.metrics
        self._scheduler = runtime.scheduler
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[StepOutput | BaseException] = asyncio.Queue()
        self._prompt_tokens = len(prompt)
        self._arrived = time.perf_counter()
        self._last: float | None = None
        self._counted = 0
        self.finished = False
        self._closed = False
        self._request = self._scheduler.submit(prompt, params, self._sink)

    def _sink(self, item: StepOutput | BaseException) -> None:  # called on the scheduler thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (shutdown): nobody is listening any more
            pass

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> StepOutput:
        if self.finished or self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        now = time.perf_counter()
        m = self._metrics
        if self._last is None:
            m.ttft.observe(now - self._arrived)
            m.prompt_tokens.inc(self._prompt_tokens)
        else:
            m.itl.observe(now - self._last)
        self._last = now
        m.generation_tokens.inc(item.completion_tokens - self._counted)
        self._counted = item.completion_tokens
        if item.finished:
            self.finished = True
            m.e2e.observe(now - self._arrived)
            m.success(item.finish_reason or "length")
        return item

    async def collect(self) -> Completion:
        """Read the stream to the end into one ``Completion`` (closing it, i.e. cancelling, if interrupted)."""
        text: list[str] = []
        tokens: list[int] = []
        logprobs: list[TokenLogprob] = []
        out: StepOutput | None = None
        ttft: float | None = None
        try:
            async for out in self:
                if ttft is None:
                    ttft = time.perf_counter() - self._arrived
                text.append(out.text_delta)
                if out.completion_tokens > len(tokens):
                    tokens.append(out.token_id)
                logprobs.extend(out.logprobs)
        finally:
            self.close()
        assert out is not None
        elapsed = time.perf_counter() - self._arrived
        return Completion(text="".join(text), token_ids=tokens, finish_reason=out.finish_reason or "length",
                          prompt_tokens=self._prompt_tokens, completion_tokens=out.completion_tokens,
                          ttft_s=ttft or elapsed, seconds=elapsed, logprobs=logprobs)

    def close(self) -> None:
        """Cancel the request unless it already finished (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self.finished:
            self._scheduler.cancel(self._request)
            self._metrics.success("abort")
