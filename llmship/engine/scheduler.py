"""Continuous batching: requests join and leave a running batch between decode steps.

One worker thread owns the model. Each loop it (1) drops rows whose client went
away, (2) prefills newly admitted requests together and merges their KV cache
into the running batch (left-padding the shorter history), and (3) runs one
decode step for every running row. A request therefore waits for at most one
step before it starts, never for a whole batch to finish (static batching),
and a finished or cancelled row frees its slot at the next step.

Everything here is synchronous and thread-based on purpose: the forward pass
releases the GIL (ONNX Runtime, PyTorch), so the HTTP event loop stays free,
and the same scheduler serves the in-process benchmark and the HTTP service.
Results go to a per-request ``sink`` callable that must not block (the HTTP
layer puts them on an asyncio queue), so a slow client never stalls others.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel

from llmship.engine.base import Engine, SamplingParams, SequenceState, StepOutput
from llmship.errors import EngineUnavailable

log = logging.getLogger(__name__)
Sink = Callable[[StepOutput | BaseException], None]


@dataclass(eq=False)
class Request:
    """One sequence in the scheduler; ``cancel()`` may be called from any thread."""

    id: int
    seq: SequenceState
    sink: Sink
    arrived: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    position: int = 0  # position id of the next token fed to the model
    last_token: int = 0
    counted: int = 0  # completion tokens already added to the totals

    def cancel(self) -> None:
        self.cancelled = True


class SchedulerStats(BaseModel):
    """A snapshot for ``llmship stat`` and the ``num_requests_*`` gauges."""

    pid: int
    backend: str
    slots_total: int
    slots_busy: int
    slots_idle: int
    queue_length: int
    max_waiting: int
    requests_total: int
    requests_finished: int
    requests_cancelled: int
    generated_tokens_total: int
    steps_total: int
    last_work_at: float | None  # unix time of the last forward pass
    started_at: float
    accepting: bool


class Scheduler:
    """Iteration-level scheduling over an ``Engine`` (one model, one worker thread)."""

    def __init__(self, engine: Engine, *, max_batch: int = 16, max_waiting: int = 64,
                 max_prefill_tokens: int = 4096, on_change: Callable[[int, int], None] | None = None) -> None:
        if max_batch < 1 or max_waiting < 0:
            raise ValueError("max_batch must be >= 1 and max_waiting >= 0")
        self.engine = engine
        self.backend = engine.backend
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.max_prefill_tokens = max_prefill_tokens
        self._on_change = on_change
        self._cond = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []
        self._past: Any = None
        self._mask: torch.Tensor | None = None
        self._ids = itertools.count(1)
        self._accepting = True
        self._stop = False
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        self._last_work: float | None = None
        self._counts = {"total": 0, "finished": 0, "cancelled": 0, "tokens": 0, "steps": 0}

    # ------------------------------------------------------------------ public
    def start(self) -> Scheduler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="llmship-scheduler", daemon=True)
            self._thread.start()
        return self

    def submit(self, prompt: Sequence[int], params: SamplingParams, sink: Sink) -> Request:
        """Queue a request; raises ``InvalidRequest``/``ContextLengthExceeded`` at once, or 503 when full."""
        seq = self.engine.new_sequence(prompt, params)
        with self._cond:
            if not self._accepting:
                raise EngineUnavailable("the server is shutting down; retry on another replica")
            if len(self._waiting) >= self.max_waiting:
                raise EngineUnavailable(f"the server is busy ({len(self._waiting)} requests queued); retry shortly")
            request = Request(id=next(self._ids), seq=seq, sink=sink)
            self._waiting.append(request)
            self._counts["total"] += 1
            self._cond.notify_all()
        self._changed()
        return request

    def cancel(self, request: Request) -> None:
        """Forget a request whose client went away: a queued one at once, a running one before the next step."""
        request.cancel()
        with self._cond:
            if request in self._waiting:
                self._waiting.remove(request)
                self._counts["cancelled"] += 1
            self._cond.notify_all()
        self._changed()

    def stats(self) -> SchedulerStats:
        running = len(self._running)
        return SchedulerStats(
            pid=os.getpid(), backend=self.engine.name, slots_total=self.max_batch, slots_busy=running,
            slots_idle=self.max_batch - running, queue_length=len(self._waiting), max_waiting=self.max_waiting,
            requests_total=self._counts["total"], requests_finished=self._counts["finished"],
            requests_cancelled=self._counts["cancelled"], generated_tokens_total=self._counts["tokens"],
            steps_total=self._counts["steps"], last_work_at=self._last_work, started_at=self._started_at,
            accepting=self._accepting,
        )

    def close(self, drain_timeout_s: float = 30.0) -> None:
        """Stop admitting, let running and queued requests finish (up to the timeout), then stop the thread."""
        with self._cond:
            self._accepting = False
        deadline = time.monotonic() + drain_timeout_s
        while (self._running or self._waiting) and time.monotonic() < deadline and self._alive():
            time.sleep(0.05)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        leftover = list(self._waiting) + list(self._running)
        self._waiting.clear()
        self._running.clear()
        for request in leftover:
            request.sink(EngineUnavailable("the server shut down before this request finished"))

    # --------------------------------------------------------------- the loop
    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(len(self._running), len(self._waiting))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._waiting and not self._running:
                    self._cond.wait()
                if self._stop:
                    return
                admit = self._admit()
            try:
                with torch.inference_mode():
                    self._drop_cancelled()
                    if admit:
                        self._prefill(admit)
                    if self._running:
                        self._decode()
            except BaseException as err:  # a broken forward pass fails its requests, not the server
                log.exception("generation step failed")
                for request in {*admit, *self._running}:
                    request.sink(err)
                self._running, self._past, self._mask = [], None, None
            self._changed()

    def _admit(self) -> list[Request]:
        """Take queued requests while there are free slots and the prefill token budget allows (at least one)."""
        admit: list[Request] = []
        budget = self.max_prefill_tokens
        while self._waiting and len(self._running) + len(admit) < self.max_batch:
            request = self._waiting[0]
            if request.cancelled:
                self._waiting.popleft()
                continue
            if admit and len(request.seq.prompt) > budget:
                break
            budget -= len(request.seq.prompt)
            admit.append(self._waiting.popleft())
        return admit

    def _emit(self, request: Request, out: StepOutput) -> None:
        self._counts["tokens"] += out.completion_tokens - request.counted
        request.counted = out.completion_tokens
        request.sink(out)
        if out.finished:
            self._counts["finished"] += 1

    def _prefill(self, admit: list[Request]) -> None:
        """Run the new prompts as one left-padded batch, emit their first tokens and merge the survivors."""
        admit = [r for r in admit if not r.cancelled]
        if not admit:
            return
        input_ids, mask, positions = self.engine.left_pad([r.seq.prompt for r in admit])
        logits, past = self.backend.forward(input_ids, mask, positions, self.backend.empty_past(len(admit)))
        self._last_work = time.time()
        self._counts["steps"] += 1
        next_ids, logprobs = self.engine.sample(logits, [r.seq for r in admit])
        keep = []
        for i, request in enumerate(admit):
            token = int(next_ids[i])
            request.position, request.last_token = len(request.seq.prompt), token
            self._emit(request, self.engine.advance(0, request.seq, token, logprobs[i]))
            if not request.seq.finished:
                keep.append(i)
        if not keep:
            return
        if len(keep) < len(admit):
            past, mask = self.backend.select_rows(past, keep), mask[keep]
        self._merge([admit[i] for i in keep], past, mask)

    def _merge(self, joining: list[Request], past: Any, mask: torch.Tensor) -> None:
        if not self._running:
            self._running, self._past, self._mask = list(joining), past, mask
            return
        assert self._mask is not None
        width = max(self._mask.shape[1], mask.shape[1])
        self._past = self.backend.concat([self.backend.pad_left(self._past, width - self._mask.shape[1]),
                                          self.backend.pad_left(past, width - mask.shape[1])])
        pad = torch.nn.functional.pad
        self._mask = torch.cat([pad(self._mask, (width - self._mask.shape[1], 0)), pad(mask, (width - mask.shape[1], 0))])
        self._running.extend(joining)

    def _decode(self) -> None:
        rows = self._running
        assert self._mask is not None
        input_ids = torch.tensor([[r.last_token] for r in rows], dtype=torch.long)
        positions = torch.tensor([[r.position] for r in rows], dtype=torch.long)
        self._mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        logits, self._past = self.backend.forward(input_ids, self._mask, positions, self._past)
        self._last_work = time.time()
        self._counts["steps"] += 1
        next_ids, logprobs = self.engine.sample(logits, [r.seq for r in rows])
        for i, request in enumerate(rows):
            token = int(next_ids[i])
            request.position += 1
            request.last_token = token
            self._emit(request, self.engine.advance(0, request.seq, token, logprobs[i]))
        self._compact(lambda r: not r.seq.finished)

    def _drop_cancelled(self) -> None:
        before = len(self._running)
        self._compact(lambda r: not r.cancelled)
        self._counts["cancelled"] += before - len(self._running)

    def _compact(self, keep_if: Callable[[Request], bool]) -> None:
        """Keep the rows that pass, and cut history columns no remaining row attends to."""
        keep = [i for i, r in enumerate(self._running) if keep_if(r)]
        if len(keep) == len(self._running):
            return
        if not keep:
            self._running, self._past, self._mask = [], None, None
            return
        assert self._mask is not None
        self._past = self.backend.select_rows(self._past, keep)
        self._mask = self._mask[keep]
        self._running = [self._running[i] for i in keep]
        used = self._mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            self._past = self.backend.drop_left(self._past, first)
            self._mask = self._mask[:, first:]
