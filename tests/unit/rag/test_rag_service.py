"""The RAG API in process: real ArcadeDB, real MiniLM, the tiny chat model on vLLM behind the chat app, the official
``openai`` SDK on both hops (RAG → chat, client → RAG). tests/integration runs the same under ``bentoml serve``."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.ingest.embedding_refresh import (
    VERSION_KEY,
    ChunkingConfig,
    CorpusConfig,
    EmbedConfig,
    run_embedding_refresh,
)
from llmship.knowledge.retrieval.rerank import make_reranker
from llmship.knowledge.retrieval.retriever import Retriever
from llmship.openai.app import attach_engine, create_app
from llmship.rag.app import create_rag_app
from llmship.rag.backends import LocalRerank, LocalRetrieval
from llmship.rag.prompt import NO_SOURCES_ANSWER
from llmship.rag.service import RagService, RagSettings
from llmship.rag.upstream import ChatUpstream
from tests.conftest import free_port

DOCS = {
    "harbour/lighthouse.md": "# Brackenholm Light\n\nThe Brackenholm Light on Skerry Point can be seen for "
                             "nineteen miles.\n",
    "harbour/ferry.md": "# Ashkirk ferry\n\nThe Ashkirk ferry crosses the sound twice a day in summer.\n",
    "kitchen/buns.md": "# Saffron buns\n\nBake the saffron buns at 190 degrees for fourteen minutes.\n",
    "kitchen/cheese.md": "# Quillbury blue\n\nQuillbury blue ripens in limestone caves near Dunmarrow.\n",
}
NEW_DOC = {"railway.md": "# Pellingford railway museum\n\nThe Pellingford railway museum opens at nine every "
                          "morning.\n"}  # added by the "new refresh without restart" tests
# The tiny model knows 256 positions: a short instruction, one short source, short answers.
SETTINGS = {"top_k": 2, "max_context_chars": 100, "instruction": "Cite like [1]."}


@pytest.fixture(scope="module")
def chat_app(engine_host):
    app = create_app()
    attach_engine(app, engine_host.engine)
    global _HOST
    _HOST = engine_host
    return app


_HOST = None  # the vLLM engine's loop: every coroutine that reaches the chat app runs there


def _upstream(chat_app) -> ChatUpstream:
    return ChatUpstream("http://chat/v1", http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=chat_app)))


def write_docs(folder, docs: dict[str, str]) -> None:
    for name, text in docs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def refresh(folder, graph, embedder, version: str):
    """embedding_refresh of ``folder`` (embeddings cached beside it), writing ``version`` as the marker."""
    return run_embedding_refresh(CorpusConfig(folder=str(folder)), ChunkingConfig(),
                                 EmbedConfig(cache_path=str(folder.parent / f"{folder.name}-emb.sqlite")),
                                 graph=graph, embedder=embedder, version=version)


@pytest.fixture()
def corpus(graph, embedder, tmp_path):
    write_docs(tmp_path, DOCS)
    refresh(tmp_path, graph, embedder, "v1")
    return graph


def _rag(graph, embedder, chat_app, **settings) -> RagService:
    retriever = Retriever(graph, embedder, reranker=None, version_poll_s=0.0)
    return RagService(LocalRetrieval(retriever), LocalRerank(make_reranker("embedding")), _upstream(chat_app),
                      RagSettings(**(SETTINGS | settings)))


def _sdk(app) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://rag/v1", api_key="unused", max_retries=0,
                              http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)))


def _http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rag", timeout=60)


def run(coro):
    return _HOST.run(coro) if _HOST is not None else asyncio.run(coro)


def _stored(graph: GraphStore, chunk_id: str) -> dict:
    rows = graph.read("MATCH (c:Chunk {id: $id}) RETURN c.doc_id AS doc_id, c.text AS text, "
                      "c.start_char AS start, c.end_char AS end", id=chunk_id)
    assert rows, f"{chunk_id} is not a stored chunk"
    return rows[0]


def test_answer_cites_stored_chunks_and_the_sdk_reads_it(corpus, embedder, chat_app):
    app = create_rag_app(_rag(corpus, embedder, chat_app))

    async def go():
        raw = await _sdk(app).chat.completions.with_raw_response.create(
            model="rag", messages=[{"role": "user", "content": "How far can the Brackenholm Light be seen?"}],
            max_tokens=8, temperature=0)
        return raw.headers, raw.parse()

    headers, out = run(go())
    assert out.object == "chat.completion" and out.model == "rag"
    assert out.choices[0].finish_reason in ("stop", "length") and out.usage.completion_tokens >= 1
    assert out.usage.prompt_tokens > 20  # the sources reached the model
    assert headers["x-llmship-model-version"] == "tiny/7" and headers["x-llmship-knowledge-version"] == "v1"
    citations = out.citations  # an extra field: the SDK keeps it
    assert citations[0]["doc_id"] == "harbour/lighthouse.md" and citations[0]["index"] == 1
    for c in citations:
        stored = _stored(corpus, c["chunk_id"])
        assert (c["doc_id"], c["text"]) == (stored["doc_id"], stored["text"])
        assert (c["start_char"], c["end_char"]) == (stored["start"], stored["end"])
        assert DOCS[c["doc_id"]][c["start_char"]:c["end_char"]].strip() == c["text"].strip()
        assert set(c["scores"]) >= {"fused", "embedding"} and isinstance(c["cited"], bool)


def test_stream_ends_with_a_citations_event(corpus, embedder, chat_app):
    app = create_rag_app(_rag(corpus, embedder, chat_app))

    async def go():
        stream = await _sdk(app).chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "Where does Quillbury blue ripen?"}],
            max_tokens=6, temperature=0, stream=True, stream_options={"include_usage": True})
        return [chunk async for chunk in stream]

    chunks = run(go())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens >= 1
    last = chunks[-1]
    assert last.choices == [] and last.citations[0]["doc_id"] == "kitchen/cheese.md"
    assert {c.id for c in chunks} == {chunks[0].id} and {c.model for c in chunks} == {"rag"}


def test_empty_graph_answers_no_sources_found(graph, embedder, chat_app):
    app = create_rag_app(_rag(graph, embedder, chat_app))

    async def go():
        sdk = _sdk(app)
        msgs = [{"role": "user", "content": "Anything?"}]
        out = await sdk.chat.completions.create(model="rag", messages=msgs)
        chunks = [c async for c in await sdk.chat.completions.create(model="rag", messages=msgs, stream=True)]
        return out, chunks

    out, chunks = run(go())
    assert out.choices[0].message.content == NO_SOURCES_ANSWER and out.citations == []
    assert out.usage.total_tokens == 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == NO_SOURCES_ANSWER
    assert chunks[-1].citations == []


def test_retrieve_endpoint_scores_modes_and_collections(corpus, embedder, chat_app):
    app = create_rag_app(_rag(corpus, embedder, chat_app))

    async def go():
        async with _http(app) as http:
            hybrid = await http.post("/v1/retrieve", json={"query": "saffron buns oven", "top_k": 3})
            dense = await http.post("/v1/retrieve", json={"query": "saffron buns oven", "mode": "dense",
                                                          "rerank": False})
            only = await http.post("/v1/retrieve", json={"query": "saffron buns oven", "collection": "harbour"})
            bad = await http.post("/v1/retrieve", json={"query": "x", "mode": "psychic"})
            big = await http.post("/v1/retrieve", json={"query": "x", "top_k": 1000})
            return hybrid, dense, only, bad, big

    hybrid, dense, only, bad, big = run(go())
    body = hybrid.json()
    assert hybrid.status_code == 200 and body["reranker"] == "embedding" and body["knowledge_version"] == "v1"
    assert body["data"][0]["doc_id"] == "kitchen/buns.md" and len(body["data"]) == 3
    assert {"dense", "keyword", "fused", "embedding"} <= set(body["data"][0]["scores"])
    assert [r["rank"] for r in body["data"]] == [1, 2, 3]
    assert dense.json()["reranker"] is None and set(dense.json()["data"][0]["scores"]) == {"dense"}
    assert {r["doc_id"].split("/")[0] for r in only.json()["data"]} == {"harbour"}
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "mode"
    assert big.status_code == 422 and big.json()["error"]["param"] == "top_k"


def test_bad_requests_get_openai_errors(corpus, embedder, chat_app):
    app = create_rag_app(_rag(corpus, embedder, chat_app))
    msgs = [{"role": "user", "content": "Where?"}]

    async def go():
        async with _http(app) as http:
            return [await http.post("/v1/chat/completions", json=body) for body in (
                {"model": "gpt-4", "messages": msgs},
                {"model": "rag", "messages": msgs, "n": 2},
                {"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]},
                {"model": "rag", "messages": msgs, "rag": {"top_k": 0}},
                {"model": "rag", "messages": msgs, "rag": {"nope": 1}},
                {"model": "rag:", "messages": msgs},
            )]

    statuses = [(r.status_code, r.json()["error"]["param"]) for r in run(go())]
    assert statuses == [(404, "model"), (400, "n"), (400, "messages"), (422, "rag.top_k"), (400, "rag.nope"),
                        (404, "model")]


def test_a_stream_the_chat_model_refuses_is_an_http_error_not_a_200(corpus, embedder, chat_app):
    """The chat model's own refusal (here: more tokens than its context) comes before any byte is sent, so a
    streamed RAG answer gets the same 400 as a non-streamed one (found by the fuzz: it was a 200 with an error
    event inside)."""
    app = create_rag_app(_rag(corpus, embedder, chat_app))
    body = {"model": "rag", "messages": [{"role": "user", "content": "How far can the Brackenholm Light be seen?"}],
            "max_tokens": 100_000}

    async def go():
        async with _http(app) as http:
            return [await http.post("/v1/chat/completions", json={**body, "stream": s}) for s in (False, True)]

    plain, streamed = run(go())
    assert plain.status_code == streamed.status_code == 400
    assert streamed.json()["error"] == plain.json()["error"]


def test_collection_model_restricts_sources(corpus, embedder, chat_app):
    app = create_rag_app(_rag(corpus, embedder, chat_app))
    out = run(_sdk(app).chat.completions.create(
        model="rag:kitchen", messages=[{"role": "user", "content": "How far can the light be seen?"}], max_tokens=4))
    assert out.citations and {c["doc_id"].split("/")[0] for c in out.citations} == {"kitchen"}


def test_new_refresh_is_served_without_restart(corpus, embedder, chat_app, tmp_path):
    app = create_rag_app(_rag(corpus, embedder, chat_app))
    query = {"query": "When does the Pellingford railway museum open?", "top_k": 1}

    async def ask():
        async with _http(app) as http:
            return (await http.post("/v1/retrieve", json=query)).json()

    before = run(ask())
    assert before["knowledge_version"] == "v1" and before["data"][0]["doc_id"] != "railway.md"
    write_docs(tmp_path, NEW_DOC)
    refresh(tmp_path, corpus, embedder, "v2")
    assert corpus.get_meta(VERSION_KEY) == "v2"
    after = run(ask())
    assert after["knowledge_version"] == "v2" and after["data"][0]["doc_id"] == "railway.md"


def test_response_cache_is_off_by_default_and_keyed_by_prompt(corpus, embedder, chat_app):
    msgs = [{"role": "user", "content": "Where is the Brackenholm Light?"}]

    async def ask(app, **kw):
        raw = await _sdk(app).chat.completions.with_raw_response.create(model="rag", messages=msgs, max_tokens=6,
                                                                          temperature=0, **kw)
        return raw.headers.get("x-llmship-cache"), raw.parse().choices[0].message.content

    off = create_rag_app(_rag(corpus, embedder, chat_app))
    assert run(ask(off))[0] is None
    rag = _rag(corpus, embedder, chat_app, response_cache_size=8)
    on = create_rag_app(rag)
    first, second, other = run(ask(on)), run(ask(on)), run(ask(on, seed=5))
    assert (first[0], second[0], other[0]) == ("miss", "hit", "miss")
    assert first[1] == second[1] and rag.cache.hits == 1 and len(rag.cache) == 2


def test_graph_down_is_a_503_in_openai_format(embedder, chat_app):
    settings = GraphSettings(uri=f"bolt://127.0.0.1:{free_port()}", connect_timeout_s=1.0, max_retry_time_s=0.5)
    store = GraphStore.connect(settings, verify=False)  # as the retrieval service does: start, then 503
    app = create_rag_app(_rag(store, embedder, chat_app))

    async def go():
        async with _http(app) as http:
            chat = await http.post("/v1/chat/completions", json={"model": "rag", "messages": [
                {"role": "user", "content": "Where?"}]})
            retrieve = await http.post("/v1/retrieve", json={"query": "Where?"})
            return chat, retrieve

    for response in run(go()):
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json()["error"]["code"] == "graph_unavailable"
    with pytest.raises(openai.InternalServerError):
        run(_sdk(app).chat.completions.create(model="rag", messages=[{"role": "user", "content": "Where?"}]))
