"""One real vLLM engine for the tests that exercise llmship's app around it in process.

vLLM's async engine belongs to the event loop that started it (its output handler is a task there), so the host
runs one loop in a background thread, starts the engine on it once per session (~15 s on the tiny model with
``enforce_eager``), and runs each test's coroutine on that same loop (``host.run``). Tests then build apps with
``create_app`` + ``attach_engine`` (and the gateway, or the RAG service, around them) and call them through
``httpx.ASGITransport`` or the openai SDK: everything but the socket is real. The same app runs under
``bentoml serve`` in tests/integration.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from llmship.engine.settings import EngineSettings
from llmship.engine.vllm import ServedEngine, start_engine

T = TypeVar("T")

# The engine settings every in-process test uses: small, eager (no torch.compile), fp32 like the reference.
TEST_ENGINE = {"max_model_len": 256, "max_num_seqs": 8, "max_waiting": 8, "kv_cache_gb": 0.25,
               "enforce_eager": True, "dtype": "float32", "structured_outputs_compact": True}
# The same as the environment of a `bentoml serve` (tests/integration, tests/reliability).
TEST_ENGINE_ENV = {"LLMSHIP_MAX_MODEL_LEN": "256", "LLMSHIP_MAX_BATCH": "8", "LLMSHIP_MAX_WAITING": "8",
                   "LLMSHIP_KV_CACHE_GB": "0.25", "LLMSHIP_ENFORCE_EAGER": "true", "LLMSHIP_DTYPE": "float32",
                   "LLMSHIP_STRUCTURED_OUTPUTS_COMPACT": "true"}


class EngineHost:
    def __init__(self, folder: Path, *, model_id: str = "tiny", version: str = "tiny/7", **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="vllm-test-loop", daemon=True)
        self._thread.start()
        self.settings = EngineSettings(model_uri=f"path:{folder}", **{**TEST_ENGINE, **settings})
        self.engine: ServedEngine = self.run(start_engine(self.settings, folder, model_id=model_id, version=version))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        """Run ``coro`` on the engine's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.run(self.engine.stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


class Served:
    """An ASGI app served over HTTP by uvicorn on the engine's loop (for clients that need a socket)."""

    def __init__(self, host: EngineHost, app: Any) -> None:
        import uvicorn

        from tests.conftest import free_port

        self.host = host
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self._task = asyncio.run_coroutine_threadsafe(self.server.serve(), host.loop)

        async def started() -> None:
            for _ in range(500):  # at most 10 s
                if self.server.started:
                    return
                await asyncio.sleep(0.02)
            raise RuntimeError("uvicorn did not start")

        host.run(started())

    def close(self) -> None:
        self.server.should_exit = True
        self._task.result(timeout=30)
