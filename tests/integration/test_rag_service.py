"""The RAG Bento as users meet it: ``bentoml serve bentos.rag.service:Rag`` — five real services (RAG ingress,
retrieval, reranker, embedding, the chat model) — over a real embedded ArcadeDB, called with the ``openai``
SDK and raw HTTP.

The module owns its graph server (it stops it in the last test: a retriever whose graph is down must answer
503) and registers the tiny model as champion under a fresh LLMSHIP_HOME, as the chat service test does.
The tiny model knows 256 positions, so the service runs with one short source per answer. The gateway asks for
keys on both the RAG service and its chat dependency: the RAG service reaches the chat model with its own key
(``llmship-rag``, as ``deploy`` issues it), the tests with a key for the ``rag`` models only.
"""

from __future__ import annotations

import contextlib
import time

import httpx
import openai
import pytest

from llmship.gateway import KeyStore
from llmship.knowledge.embedder import Embedder
from llmship.knowledge.graphstore import server as graph_server_mod
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.rag.prompt import NO_SOURCES_ANSWER
from llmship.serving import process
from llmship.serving.bento import bentoml_env
from tests.conftest import REPO, free_port, llmship_home, register_champion
from tests.engine_host import TEST_ENGINE_ENV
from tests.helpers.sse import iter_sse_lines
from tests.unit.rag.test_rag_service import DOCS, NEW_DOC, _stored, refresh, write_docs

NAME = "tiny-rag-chat"


@pytest.fixture(scope="module")
def stack(tiny_built, tmp_path_factory):
    with llmship_home(tmp_path_factory.mktemp("rag-home")) as home, contextlib.ExitStack() as cleanup:
        graph_root = home / "graph"  # where GraphSettings.from_env() finds the server in the services
        info = graph_server_mod.start(bolt_port=free_port(), http_port=free_port(), root=graph_root)
        cleanup.callback(graph_server_mod.stop, graph_root)
        graph = cleanup.enter_context(GraphStore.connect(GraphSettings.for_server(info)))
        docs = tmp_path_factory.mktemp("rag-corpus") / "docs"
        write_docs(docs, DOCS)
        embedder = Embedder.load(threads=1)
        refresh(docs, graph, embedder, "v1")
        registry = register_champion(NAME, tiny_built, "vllm")
        env = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri, **TEST_ENGINE_ENV,
               "LLMSHIP_RAG_TOP_K": "2", "LLMSHIP_RAG_MAX_CONTEXT_CHARS": "100",
               "LLMSHIP_RAG_INSTRUCTION": "Cite like [1].", "LLMSHIP_RAG_VERSION_POLL_S": "0.5",
               "LLMSHIP_RAG_GRAPH_RETRY_S": "1", "LLMSHIP_GATEWAY_AUTH": "true",
               "LLMSHIP_RAG_RERANKER": "embedding"}  # the default is none; this stack proves the reranker hop
        keys = KeyStore(home / "gateway" / "keys.db")
        env["LLMSHIP_RAG_CHAT_API_KEY"] = keys.issue("llmship-rag", models=[NAME])[1]
        _, user_key = keys.create("tests", models=["rag", "rag:*"])
        _, chat_only = keys.create("chat-only", models=[NAME])
        keys.close()
        cleanup.callback(process.stop)
        served = process.start("bentos.rag.service:Rag", model_uri=f"models:/{NAME}@champion", port=free_port(),
                               env=env, wait_s=300, cwd=REPO)
        yield {"url": served.url, "key": user_key, "chat_only": chat_only, "auth": bearer(user_key), "graph": graph, "graph_info": info, "graph_root": graph_root, "docs": docs,
               "embedder": embedder}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack['url']}/v1", api_key=stack["key"], max_retries=0)


def test_the_gateway_guards_the_rag_service(stack):
    ask = {"model": "rag", "messages": [{"role": "user", "content": "Where?"}], "max_tokens": 2}
    missing = httpx.post(f"{stack['url']}/v1/chat/completions", json=ask, timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    other = httpx.post(f"{stack['url']}/v1/chat/completions", json=ask, timeout=30,
                       headers=bearer(stack["chat_only"]))
    assert other.status_code == 403 and other.json()["error"]["param"] == "model"
    assert httpx.get(f"{stack['url']}/readyz", timeout=10).status_code == 200


def test_models_lists_rag(client):
    assert [m.id for m in client.models.list().data] == ["rag"]


def test_answer_cites_stored_chunks(client, stack):
    raw = client.chat.completions.with_raw_response.create(
        model="rag", messages=[{"role": "user", "content": "How far can the Brackenholm Light be seen?"}],
        max_tokens=8, temperature=0)
    assert raw.headers["x-llmship-model-version"] == f"{NAME}/1"
    assert raw.headers["x-llmship-knowledge-version"] == "v1" and raw.headers["x-request-id"]
    out = raw.parse()
    assert out.model == "rag" and out.choices[0].finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens > 20 and out.usage.completion_tokens >= 1
    assert out.citations[0]["doc_id"] == "harbour/lighthouse.md"
    for c in out.citations:
        stored = _stored(stack["graph"], c["chunk_id"])
        assert (c["doc_id"], c["text"], c["start_char"], c["end_char"]) == (
            stored["doc_id"], stored["text"], stored["start"], stored["end"])
        assert "embedding" in c["scores"]  # the reranker service ran


def test_stream_has_citations_before_done(stack):
    with httpx.stream("POST", f"{stack['url']}/v1/chat/completions", timeout=60, headers=stack["auth"], json={
            "model": "rag", "messages": [{"role": "user", "content": "Where does Quillbury blue ripen?"}],
            "max_tokens": 6, "stream": True}) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in iter_sse_lines(response) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json

    last = json.loads(events[-2])
    assert last["choices"] == [] and last["citations"][0]["doc_id"] == "kitchen/cheese.md"


def test_sdk_reads_the_stream_unmodified(client):
    chunks = list(client.chat.completions.create(
        model="rag:harbour", messages=[{"role": "user", "content": "Which ferry crosses the sound?"}], max_tokens=4,
        stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].citations and {c["doc_id"] for c in chunks[-1].citations} <= set(DOCS)
    assert all(c["doc_id"].startswith("harbour/") for c in chunks[-1].citations)
    assert sum(1 for c in chunks if c.usage) == 1


def test_retrieve_returns_each_retrievers_scores(stack):
    r = httpx.post(f"{stack['url']}/v1/retrieve", headers=stack["auth"], timeout=30,
                   json={"query": "saffron buns oven", "top_k": 3})
    body = r.json()
    assert r.status_code == 200 and body["reranker"] == "embedding" and len(body["data"]) == 3
    assert body["data"][0]["doc_id"] == "kitchen/buns.md"
    assert {"dense", "keyword", "fused", "embedding"} <= set(body["data"][0]["scores"])
    bad = httpx.post(f"{stack['url']}/v1/retrieve", headers=stack["auth"], timeout=30,
                     json={"query": "x", "mode": "psychic"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "mode"


def test_a_new_refresh_is_served_without_restart(stack):
    write_docs(stack["docs"], NEW_DOC)
    refresh(stack["docs"], stack["graph"], stack["embedder"], "v2")
    deadline = time.monotonic() + 30
    while True:
        body = httpx.post(f"{stack['url']}/v1/retrieve", timeout=30, headers=stack["auth"],
                          json={"query": "When does the railway museum open?", "top_k": 1}).json()
        if body["knowledge_version"] == "v2" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert body["knowledge_version"] == "v2" and body["data"][0]["doc_id"] == "railway.md"


def test_empty_graph_gives_no_sources_found(client, stack):
    stack["graph"].clear()
    out = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "Anything there?"}])
    assert out.choices[0].message.content == NO_SOURCES_ANSWER and out.citations == []


def test_graph_down_is_503_in_openai_format(client, stack):
    graph_server_mod.stop(stack["graph_root"])
    r = httpx.post(f"{stack['url']}/v1/chat/completions", timeout=60, headers=stack["auth"],
                   json={"model": "rag", "messages": [{"role": "user", "content": "Where?"}]})
    assert r.status_code == 503 and r.headers["retry-after"]
    error = r.json()["error"]
    assert error["code"] == "graph_unavailable" and error["type"] and "graph" in error["message"]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "Where?"}])
    # the services stay up: liveness is fine while the graph is away
    assert httpx.get(f"{stack['url']}/livez", timeout=10).status_code == 200
