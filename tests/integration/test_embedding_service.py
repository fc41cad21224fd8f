"""The embedding Bento as a real ``bentoml serve`` process: its HTTP API, and the adapter the chat service uses.

``BentoEmbeddingBackend`` is driven over BentoML's own ``RemoteProxy``, the client ``bentoml.depends(Embedding)``
hands a composing service (which talks pickle to it; a standalone "main" server only accepts JSON, and errors are
JSON either way), so error propagation (an ``LlmshipError`` raised in the embedding process coming back as the
same ``LlmshipError``) is tested for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time

import httpx
import numpy as np
import pytest

from llmship.errors import ContextLengthExceeded, EngineUnavailable, InvalidRequest
from llmship.serving.bento import bentoml_env
from llmship.serving.process import bentoml_executable
from tests.conftest import REPO, free_port

TARGET = "bentos.embedding.service:Embedding"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("embedding-serve") / "serve.log"
    env = {**bentoml_env(), "LLMSHIP_EMBED_THREADS": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([bentoml_executable(), "serve", TARGET, "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the embedding service was not ready in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_embed_returns_normalised_vectors_and_token_counts(server):
    resp = httpx.post(f"{server}/embed", json={"texts": ["hello world", "cat"]}, timeout=60)
    assert resp.status_code == 200
    body = resp.json()
    assert body["model"] == "all-MiniLM-L6-v2" and body["dimensions"] == 384
    vectors = np.asarray(body["embeddings"], dtype=np.float32)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert body["prompt_tokens"] == 4 + 3  # [CLS] hello world [SEP], [CLS] cat [SEP]


def test_info(server):
    resp = httpx.post(f"{server}/info", json={}, timeout=30)
    assert resp.json() == {"model": "all-MiniLM-L6-v2", "dimensions": 384, "max_input_tokens": 256}


def test_client_errors_are_400s_carrying_the_openai_error(server):
    resp = httpx.post(f"{server}/embed", json={"texts": ["ok", "word " * 300]}, timeout=60)
    assert resp.status_code == 400
    assert "context_length_exceeded" in resp.text and "input[1] has 302 tokens" in resp.text


@pytest.fixture(scope="module")
def connect():
    """BentoML's dependency client; it reads service config that ``bentoml serve`` would have loaded."""
    from _bentoml_impl.client import RemoteProxy

    from bentos.embedding.service import Embedding

    Embedding.inject_config()

    @contextlib.asynccontextmanager
    async def connect(url: str):
        proxy = RemoteProxy(url, service=Embedding, media_type="application/json")
        await proxy.__aenter__()  # what the serving app does for each dependency; there is no __aexit__
        try:
            yield proxy
        finally:
            await proxy.close()

    return connect


def test_adapter_over_a_bentoml_remote_proxy(server, connect):
    from bentos.embedding.service import BentoEmbeddingBackend

    async def run():
        async with connect(server) as proxy:
            backend = BentoEmbeddingBackend(proxy)
            await backend.ready()
            assert (backend.model_id, backend.dimensions) == ("all-MiniLM-L6-v2", 384)
            vectors, tokens = await backend.embed(["hello world", "cat"])
            assert len(vectors) == 2 and len(vectors[0]) == 384 and tokens == 4 + 3
            with pytest.raises(ContextLengthExceeded, match=r"input\[1\] has 302 tokens") as err:
                await backend.embed(["ok", "word " * 300])
            assert (err.value.status, err.value.code, err.value.param) == (400, "context_length_exceeded", "input")
            with pytest.raises(InvalidRequest, match=r"input\[0\] is an empty string") as err:
                await backend.embed([""])
            assert (err.value.status, err.value.param) == (400, "input")

    asyncio.run(run())


def test_adapter_reports_an_unreachable_service_as_503(connect):
    from bentos.embedding.service import BentoEmbeddingBackend

    async def run():
        async with connect(f"http://127.0.0.1:{free_port()}") as proxy:
            with pytest.raises(EngineUnavailable, match="embedding service is unavailable") as err:
                await BentoEmbeddingBackend(proxy).ready()
            assert err.value.status == 503

    asyncio.run(run())
