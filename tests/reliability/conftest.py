"""Fixtures for the reliability tests: the tiny model with a longer window, and real ``bentoml serve`` chat servers.

Each server is the chat Bento as ``deploy`` starts it (``llmship.serving.process.start`` on a free port on
127.0.0.1, the champion from a real SQLite MLflow registry under its own LLMSHIP_HOME, the embedding service
composed in), stopped at the end of the block whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import psutil
import pytest

from llmship.serving import process
from llmship.serving.bento import bentoml_env
from tests.conftest import REPO, free_port, llmship_home, register_champion
from tests.engine_host import TEST_ENGINE_ENV

NAME = "tiny-chat"
CONTEXT = 1024  # tokens: the served window (LLMSHIP_MAX_MODEL_LEN) of the long-window copy


@pytest.fixture(scope="session")
def long_tiny_model(tiny_built, tmp_path_factory) -> Path:
    """The tiny model (``hf/``) copied with ``max_position_embeddings`` raised from 256 to CONTEXT.

    At 256 tokens a tiny-model stream is over in ~0.3 s; the worker-kill test needs streams that are still
    running seconds after they start. Gemma's rotary positions are computed, not looked up in a table, so the
    same weights serve the longer window.
    The copy is real files (``hf/`` holds symlinks into the tiny model's folder, which other tests share).
    """
    folder = tmp_path_factory.mktemp("reliability-model") / "tiny-long"
    shutil.copytree(tiny_built.folder.parent, folder, symlinks=False)
    config_path = folder / "hf" / "config.json"
    config = json.loads(config_path.read_text())
    config["max_position_embeddings"] = CONTEXT
    config_path.write_text(json.dumps(config, indent=2))
    return folder


@pytest.fixture(scope="session")
def slow_tiny_model(tmp_path_factory) -> Path:
    """A wider, deeper random Gemma-3 (1,024 positions) built as deploy does: vLLM decodes it slowly enough on
    2 cores that an 800-token stream is still running seconds after it starts (the worker-kill test needs that)."""
    from llmship.models import build_model
    from tests.conftest import CORPUS
    from tests.tiny_model import make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp("slow-model") / "slow-gemma", CORPUS, hidden_size=768,
                             layers=12, max_positions=CONTEXT)
    return build_model(f"path:{folder}", cache_dir=tmp_path_factory.mktemp("slow-cache")).folder.parent


@contextlib.contextmanager
def chat_server(model_dir: Path, home: Path, *, workers: int = 1, env: dict[str, str] | None = None,
                wait_s: float = 180.0) -> Iterator[process.ServerInfo]:
    """``bentoml serve bentos.chat.service:Chat`` with ``LLMSHIP_CHAT_WORKERS=workers`` on a free port."""
    with llmship_home(home):
        registry = register_champion(NAME, SimpleNamespace(folder=model_dir / "hf"), "vllm")
        port = free_port()
        full_env = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri, **TEST_ENGINE_ENV,
                    "LLMSHIP_MAX_MODEL_LEN": str(CONTEXT), "LLMSHIP_CHAT_WORKERS": str(workers), **(env or {})}
        try:
            yield process.start("bentos.chat.service:Chat", model_uri=f"models:/{NAME}@champion", port=port,
                                env=full_env, wait_s=wait_s, cwd=REPO)
        finally:
            process.stop(port)


def chat_workers(root_pid: int) -> dict[int, str]:
    """Live chat worker processes under the ``bentoml serve`` process: pid -> BentoML worker id.

    Picked by command line (``--service-name llmship-chat``), so the embedding dependency's worker, which
    runs the same module with ``--service-name llmship-embedding``, is never taken for a chat worker.
    """
    found = {}
    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return found
    for proc in children:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "--service-name" in cmd and cmd[cmd.index("--service-name") + 1] == "llmship-chat":
            found[proc.pid] = cmd[cmd.index("--worker-id") + 1] if "--worker-id" in cmd else "?"
    return found


def answering_pids(url: str, want: set[int], timeout_s: float) -> set[int]:
    """Ask ``/stat`` on fresh connections (the kernel picks the worker) until every pid in ``want`` answered.

    Returns the pids seen; a worker answers only once its model is loaded (BentoML starts serving after the
    service's start-up hooks, here the vLLM engine), so seeing a pid means that worker is ready.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not want <= seen:
        try:
            with httpx.Client(timeout=5.0) as client:  # a new connection each time
                resp = client.get(f"{url}/stat")
            if resp.status_code == 200:
                seen |= {w["pid"] for w in resp.json()["workers"]}
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return seen
