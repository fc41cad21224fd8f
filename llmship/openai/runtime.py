"""What the HTTP layer serves: one loaded engine plus its registry identity.

Requests run one generation at a time on a worker thread (the event loop stays
free for other clients); at most ``max_waiting`` requests queue behind it and
the next one gets 503 with ``Retry-After``. A client that disconnects
mid-stream cancels its generation at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from llmship.engine.base import Completion, Engine, SamplingParams, StepOutput
from llmship.errors import EngineUnavailable


@dataclass
class ServedModel:
    engine: Engine
    model_id: str
    version: str  # "<registered name>/<version>", sent as x-llmship-model-version
    backend: str
    created: int = field(default_factory=lambda: int(time.time()))


class Runtime:
    def __init__(self, served: ServedModel, max_waiting: int = 64) -> None:
        self.served = served
        self.max_waiting = max_waiting
        self._slot = asyncio.Semaphore(1)
        self._waiting = 0

    async def _acquire(self) -> None:
        if self._waiting >= self.max_waiting:
            raise EngineUnavailable(f"the server is busy ({self._waiting} requests queued); retry shortly")
        self._waiting += 1
        try:
            await self._slot.acquire()
        finally:
            self._waiting -= 1

    async def complete(self, prompt: list[int], params: SamplingParams) -> Completion:
        await self._acquire()
        try:
            return (await asyncio.to_thread(self.served.engine.generate, [prompt], params))[0]
        finally:
            self._slot.release()

    async def stream(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[StepOutput]:
        """Yield step outputs as the worker thread produces them."""
        await self._acquire()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StepOutput | BaseException | None] = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            try:
                for step in self.served.engine.iterate([prompt], params):
                    if cancelled.is_set():
                        break
                    for out in step:
                        loop.call_soon_threadsafe(queue.put_nowait, out)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as err:  # surfaced to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, err)

        worker = loop.run_in_executor(None, produce)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()
            await asyncio.shield(worker)
            self._slot.release()
