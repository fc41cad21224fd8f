"""``POST /v1/embeddings`` over the real MiniLM, through raw HTTP (TestClient) and the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import base64
import threading

import fastapi
import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient

from llmship.knowledge import Embedder
from llmship.openai import errors
from llmship.openai.embeddings import EmbeddingBackend, LocalEmbeddingBackend, embeddings_router

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The cat is sleeping on the sofa.", "A cat naps on the couch.", "Interest rates rose by half a percent."]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load(threads=1)


@pytest.fixture(scope="module")
def app(embedder) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    errors.install(app)
    app.include_router(embeddings_router())
    app.state.embedder = LocalEmbeddingBackend(embedder)
    return app


@pytest.fixture(scope="module")
def http(app) -> TestClient:
    return TestClient(app)


@pytest.fixture(scope="module")
def sdk(http) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)


def post(http: TestClient, **body):
    return http.post("/v1/embeddings", json={"model": MODEL, **body})


def test_float_encoding_returns_the_embedder_vectors_and_exact_usage(http, embedder):
    resp = post(http, input=TEXTS)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in body["data"])
    expected = embedder.embed(TEXTS)
    np.testing.assert_allclose(np.array([d["embedding"] for d in body["data"]]), expected.vectors, atol=1e-6)
    assert body["usage"] == {"prompt_tokens": expected.prompt_tokens, "total_tokens": expected.prompt_tokens}


def test_base64_is_little_endian_float32_and_equals_float(http):
    floats = post(http, input=TEXTS, encoding_format="float").json()["data"]
    encoded = post(http, input=TEXTS, encoding_format="base64").json()["data"]
    for f, b in zip(floats, encoded, strict=True):
        assert isinstance(b["embedding"], str)
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")  # as the openai SDK decodes it
        assert decoded.shape == (384,)
        np.testing.assert_array_equal(decoded, np.asarray(f["embedding"], dtype=np.float32))


def test_a_single_string_is_one_embedding(http):
    body = post(http, input="hello world").json()
    assert len(body["data"]) == 1 and body["usage"]["prompt_tokens"] == 4


def test_sdk_default_request_base64_decodes_to_the_same_vectors(sdk, embedder):
    result = sdk.embeddings.create(model=MODEL, input=TEXTS)  # the SDK asks for base64 and decodes it
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    np.testing.assert_array_equal(vectors, embedder.embed(TEXTS).vectors)
    assert result.model == MODEL and result.usage.total_tokens == result.usage.prompt_tokens > 0
    paraphrase, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert paraphrase > unrelated + 0.4


def test_sdk_float_and_aliases_and_native_dimensions(sdk):
    for name in (MODEL, "sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"):
        result = sdk.embeddings.create(model=name, input="rain", encoding_format="float", dimensions=384)
        assert result.model == MODEL and len(result.data[0].embedding) == 384


def test_sdk_raises_typed_errors(sdk):
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError, match="at most 256"):
        sdk.embeddings.create(model=MODEL, input="word " * 300)


@pytest.mark.parametrize(
    ("body", "status", "code", "param", "message"),
    [
        ({"model": "nope", "input": "x"}, 404, "model_not_found", "model", "'nope' does not exist"),
        ({"input": ["ok", "word " * 300]}, 400, "context_length_exceeded", "input", r"input[1] has 302 tokens"),
        ({"input": ["ok", ""]}, 400, None, "input", "input[1] is an empty string"),
        ({"input": ""}, 400, None, "input", "input[0] is an empty string"),
        ({"input": []}, 400, None, "input", "must not be an empty list"),
        ({"input": [101, 2023, 102]}, 400, None, "input", "token arrays are not supported; send text"),
        ({"input": [[101, 102], [101, 102]]}, 400, None, "input", "token arrays are not supported; send text"),
        ({"input": ["x"] * 2049}, 400, None, "input", "at most 2048"),
        ({"input": "x", "dimensions": 256}, 400, None, "dimensions", "only produces 384-dimensional"),
        ({"input": "x", "encoding_format": "hex"}, 422, "invalid_value", "encoding_format", "encoding_format"),
        ({"input": ["a", 1]}, 422, "invalid_value", "input", "must be a string or a list of strings"),
        ({"input": 42}, 422, "invalid_value", "input", "must be a string or a list of strings"),
        ({"input": "x", "dimensions": 0}, 422, "invalid_value", "dimensions", "dimensions"),
        ({"input": "x", "truncate": True}, 400, "unsupported_parameter", "truncate", "truncate"),
    ],
)
def test_errors_use_the_openai_error_format(http, body, status, code, param, message):
    resp = http.post("/v1/embeddings", json={"model": MODEL, **body})
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["param"] == param
    assert error["type"] in ("invalid_request_error", "not_found_error")
    assert message in error["message"]


def test_no_backend_yet_is_a_503_with_retry_after(embedder):
    app = fastapi.FastAPI()
    errors.install(app)
    app.include_router(embeddings_router())
    app.state.embedder = None
    resp = TestClient(app).post("/v1/embeddings", json={"model": MODEL, "input": "x"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
    assert resp.json()["error"]["code"] == "engine_unavailable"


def test_local_backend_satisfies_the_protocol_and_does_not_block_the_loop(embedder):
    """Each embedding waits, inside its call, for a signal that only the event loop sends: if the backend ran the
    model on the loop's thread the signal could never come (the wait gives up after 30 s and the test fails), so
    a pass proves the loop kept running while batches were embedded. No timing is assumed."""
    release = threading.Event()
    waited: list[bool] = []

    class Gated:
        model_id, dimensions = embedder.model_id, embedder.dimensions

        def embed(self, texts):
            waited.append(release.wait(timeout=30))
            return embedder.embed(texts)

    backend = LocalEmbeddingBackend(Gated())
    assert isinstance(backend, EmbeddingBackend)

    async def run() -> list:
        batches = asyncio.gather(*(backend.embed([t] * 32) for t in TEXTS))
        await asyncio.sleep(0)  # the loop runs on while the calls wait in worker threads, and lets them go
        release.set()
        return await batches

    results = asyncio.run(run())
    assert waited == [True, True, True]
    assert [len(vectors) for vectors, _ in results] == [32, 32, 32]
