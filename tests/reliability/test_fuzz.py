"""Fuzz both HTTP surfaces with schemathesis, generated from the services' own OpenAPI schemas.

The apps run in process and every request goes through the full ASGI stack: schemathesis' ASGI client, the gateway
(API keys on), the body-size limit, FastAPI, the routes, the real scheduler over the tiny model, MiniLM for
embeddings; for RAG, the real ArcadeDB, retriever and reranker, and the chat app (behind its own gateway) reached
with the ``openai`` SDK over an ASGI transport. Nothing is mocked.

Per app and operation, a Hypothesis ``@given`` drives ``operation.as_strategy()`` in schemathesis' positive
mode (schema-valid requests, a share of them pointed at the served model so they really generate) and negative
mode (bodies and parameters that violate the schema, raw non-JSON bytes). Beyond the schema, hand-written slices:
every ``HOSTILE`` value (NaN/Infinity, 1e309, int64 and uint64 overflow, a 5,000-digit integer, NULs, lone
surrogates, 3,000-deep nesting, a 70 kB string) in every field of a valid body, wrong content types, truncated JSON,
raw garbage, chunked and oversized bodies, routes and methods outside the schema, and missing or garbage API keys
(401). Every request is counted; the contract, checked on every response:

- no status >= 500 (and no in-band ``server_error`` event inside a 200 stream, which is a 500 in disguise);
- every status >= 400 carries ``{"error": {"message": str, "type": str, "param": str|null, "code": str|null}}``
  as ``application/json``; every in-band SSE ``error`` event has the same shape; every SSE event is JSON.

Failures are collected (not asserted inside Hypothesis: no shrinking over a model) and reported with a curl
line. ``FUZZ_EXAMPLES`` (default 2,000) is how many requests schemathesis generates from the two schemas together
(the hand-written slices come on top); the per-operation split is fixed and Hypothesis is derandomized, so a run
is reproducible. ``FUZZ_DEBUG=1`` adds error codes per operation and the slow requests to the printed table.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from llmship.gateway import Gateway, GatewaySettings, KeyStore
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.knowledge.retrieval.rerank import make_reranker
from llmship.knowledge.retrieval.retriever import Retriever
from llmship.openai.app import ApiSettings, attach_engine, create_app
from llmship.openai.embeddings import LocalEmbeddingBackend
from llmship.rag.app import create_rag_app
from llmship.rag.backends import LocalRerank, LocalRetrieval
from llmship.rag.service import RagService, RagSettings
from llmship.rag.upstream import ChatUpstream
from tests.engine_host import Served
from tests.unit.rag.test_rag_service import DOCS, SETTINGS, refresh, write_docs

TOTAL = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
DEBUG = bool(os.environ.get("FUZZ_DEBUG"))
MODEL = "tiny"
MAX_BODY = 64 * 1024  # the chat app's body limit: big enough for generated bodies, small enough to cross
QUESTION = "How far can the Brackenholm Light be seen?"
ERROR_KEYS = {"message", "type", "param", "code"}

# schemathesis requests per (app, operation, mode) when FUZZ_EXAMPLES is 2,000 (scaled with it). Operations without
# parameters (GET /v1/models, GET /stat) have one possible request, and Hypothesis stops after it; the plan adds up
# to a little more than the budget so that the schemathesis requests alone reach it. The hand-written slices (hostile
# field values, broken bodies, stray routes, bad keys) come on top.
PLAN: dict[str, dict[tuple[str, str, str], int]] = {
    "chat": {
        ("POST", "/v1/chat/completions", "positive"): 420,
        ("POST", "/v1/chat/completions", "negative"): 150,
        ("POST", "/v1/completions", "positive"): 330,
        ("POST", "/v1/completions", "negative"): 120,
        ("POST", "/v1/embeddings", "positive"): 150,
        ("POST", "/v1/embeddings", "negative"): 80,
        ("POST", "/tokenize", "positive"): 40,
        ("GET", "/v1/sessions/{session_id}", "positive"): 30,
        ("DELETE", "/v1/sessions/{session_id}", "positive"): 30,
        ("GET", "/v1/models", "positive"): 1,
        ("GET", "/stat", "positive"): 1,
    },
    "rag": {
        ("POST", "/v1/chat/completions", "positive"): 380,
        ("POST", "/v1/chat/completions", "negative"): 130,
        ("POST", "/v1/retrieve", "positive"): 220,
        ("POST", "/v1/retrieve", "negative"): 90,
        ("GET", "/v1/models", "positive"): 1,
    },
}
BROKEN_PER_OPERATION = 55  # hand-written broken bodies per POST operation
STRAY_PER_APP = 30  # unknown routes and wrong methods
AUTH_PER_APP = 40  # missing / garbage keys (gateway only)


def scaled(n: int) -> int:
    return max(1, math.ceil(n * TOTAL / 2000)) if n > 1 else n


def quota(app: str) -> int:
    """The schemathesis requests an app's test must have sent: its share of FUZZ_EXAMPLES (the shares add up to
    it)."""
    share = sum(PLAN[app].values()) / sum(sum(p.values()) for p in PLAN.values())
    return math.ceil(TOTAL * share)


# ---------------------------------------------------------------------------------------------- the contract
def error_problem(body: Any) -> str | None:
    """None when ``body`` is an OpenAI error object, else what is wrong with it."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return f"not {{'error': ...}}: {str(body)[:200]}"
    err = body["error"]
    if not isinstance(err, dict) or set(err) != ERROR_KEYS:
        return f"error keys are not {sorted(ERROR_KEYS)}: {str(err)[:200]}"
    if not isinstance(err["message"], str) or not err["message"]:
        return "error.message is not a non-empty string"
    if not isinstance(err["type"], str) or not err["type"]:
        return "error.type is not a non-empty string"
    for key in ("param", "code"):
        if err[key] is not None and not isinstance(err[key], str):
            return f"error.{key} is neither a string nor null: {err[key]!r}"
    return None


def sse_events(content: bytes) -> Iterator[str]:
    for event in content.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:")]
        if data:
            yield "\n".join(data)


def response_problems(status: int, headers: dict[str, str], content: bytes, *, has_body: bool = True) -> list[str]:
    ctype = headers.get("content-type", "")
    if status >= 500:
        return [f"status {status}: {content[:300]!r}"]
    if not has_body:  # the answer to HEAD: a status and headers only
        return []
    if status >= 400:
        if not ctype.startswith("application/json"):
            return [f"status {status} with content-type {ctype!r}: {content[:200]!r}"]
        try:
            body = json.loads(content)
        except ValueError:
            return [f"status {status} body is not JSON: {content[:200]!r}"]
        problem = error_problem(body)
        return [f"status {status}: {problem}"] if problem else []
    if ctype.startswith("text/event-stream"):
        out = []
        for data in sse_events(content):
            if data == "[DONE]":
                continue
            try:
                event = json.loads(data)
            except ValueError:
                out.append(f"SSE event is not JSON: {data[:200]!r}")
                continue
            if isinstance(event, dict) and "error" in event:
                problem = error_problem(event)
                if problem:
                    out.append(f"in-band SSE error: {problem}")
                elif event["error"]["type"] == "server_error":
                    out.append(f"in-band server_error (a 500 after the headers): {event['error']['message']}")
        return out
    if ctype.startswith("application/json"):
        try:
            json.loads(content)
        except ValueError:
            return [f"status {status} JSON body does not parse: {content[:200]!r}"]
    return []


@dataclass
class Tally:
    """Counts every request sent, by operation, and keeps what broke the contract."""

    app: str
    counts: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    by_label: dict[str, Counter] = field(default_factory=dict)
    seconds: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def record(self, label: str, status: int, headers: dict[str, str], content: bytes, repro: Callable[[], str], *,
               has_body: bool = True) -> None:
        self.counts[label] += 1
        self.statuses[status] += 1
        self.by_label.setdefault(label, Counter())[status] += 1
        problems = response_problems(status, headers, content, has_body=has_body)
        if DEBUG and status >= 400 and has_body and not problems:  # which errors, by code (or message when it has none)
            err = json.loads(content)["error"]
            self.by_label[label][(status, err["code"] or err["message"][:60])] += 1
        if status == 200 and headers.get("content-type", "").startswith("text/event-stream") and not problems:
            for data in sse_events(content):  # a client error after the headers: allowed, but worth seeing
                if data.startswith('{"error"'):
                    self.by_label[label]["200 + in-band " + (json.loads(data)["error"]["code"] or "error")] += 1
        for problem in problems:
            if len(self.failures) < 50:
                self.failures.append(f"{self.app} {label}: {problem}\n    {repro()[:600]}")
            else:
                self.failures.append("")  # counted, not printed

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def generated(self) -> int:
        """Requests schemathesis generated from the OpenAPI schema (the hand-written slices not counted)."""
        return sum(n for label, n in self.counts.items() if label.endswith(("[positive]", "[negative]")))

    def report(self) -> str:
        head = f"{self.app}: {self.total} requests ({self.generated} from the schema), {self.seconds.total():.1f} s"
        lines = [f"{head}; statuses {dict(sorted(self.statuses.items()))}"]
        for label, n in sorted(self.counts.items()):
            statuses = dict(sorted(self.by_label[label].items(), key=str))
            lines.append(f"  {n:5d} {self.seconds[label]:6.1f} s  {label:46s} {statuses}")
        return "\n".join(lines)

    def assert_clean(self, *, generated: int = 0, total: int = 0) -> None:
        """No contract broken; at least ``generated`` schemathesis requests and ``total`` requests in all."""
        print("\n" + self.report())
        broken = [f for f in self.failures if f]
        assert not self.failures, (f"{len(self.failures)} responses broke the contract; first ones:\n"
                                   + "\n".join(broken[:25]))
        assert self.generated >= generated, (f"schemathesis generated only {self.generated} requests for {self.app}; "
                                             f"its share of the budget is {generated}")
        assert self.total >= total, f"only {self.total} requests went to {self.app}, fewer than {total}"


def _headers(response: Any) -> dict[str, str]:
    """schemathesis' ``Response.headers`` is lowercase name → list of values; requests' is a plain mapping."""
    raw = response.headers
    return {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in raw.items()}


# ---------------------------------------------------------------------------------------------- the apps
def cap_work(body: dict[str, Any]) -> None:
    """At most 4 prompts x 2 samples x 8 tokens: a batch of 10 prompts x n=8 x 16 tokens is valid, but generating it
    a hundred times would spend the time budget on the model rather than on the API."""
    if isinstance(body.get("prompt"), list) and body["prompt"] and not isinstance(body["prompt"][0], int):
        body["prompt"] = body["prompt"][:4]
    if isinstance(body.get("n"), (int, float)) and body["n"] > 2:  # schemathesis sends integers as 6.0 too
        body["n"] = 2
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] > 8:
        body["max_tokens"] = 8
    if isinstance(body.get("max_completion_tokens"), int) and body["max_completion_tokens"] > 8:
        body["max_completion_tokens"] = 8


def one_user_turn(body: dict[str, Any]) -> None:
    """Keep a generated conversation's first message, as a user turn (its content stays as generated)."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        body["messages"] = [{**messages[0], "role": "user"}]


@dataclass
class Target:
    """One app under test, behind the gateway (auth on), and how to talk to it."""

    name: str
    app: Any
    url: str  # where uvicorn serves it, on the vLLM engine's loop (tests/engine_host.py)
    key: str  # a valid API key: every fuzz request carries it
    fix: Callable[[str, str, Any, int], None]  # nudges a positive case towards the served model
    valid_bodies: dict[str, dict[str, Any]]  # per POST path: a request that would succeed
    max_body: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self) -> requests.Session:
        return BaseUrlSession(self.url)

    def schema(self):
        schema = schemathesis.openapi.from_url(f"{self.url}/openapi.json", headers=self.auth)
        schema.config.output.sanitization.update(enabled=False)  # repro lines show max_tokens, session_id as sent
        return schema


def behind_gateway(app: Any, gateway_dir, name: str) -> str:
    """Put the gateway (API keys required) in front of ``app``; a key it accepts."""
    store = KeyStore(gateway_dir / "keys.db")
    try:
        _, key = store.create(name)
    finally:
        store.close()
    app.add_middleware(Gateway, settings=GatewaySettings(auth=True, keys_db=str(gateway_dir / "keys.db"),
                                                         audit_path=str(gateway_dir / "audit.jsonl")))
    return key


@pytest.fixture(scope="module")
def gateway_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gateway")


class BaseUrlSession(requests.Session):
    """requests with relative paths resolved against the server (schemathesis sends absolute URLs already)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        return super().request(method, self.base + url if url.startswith("/") else url, *args, **kwargs)


@pytest.fixture(scope="module")
def chat(engine_host, embedder, gateway_dir) -> Iterator[Target]:
    """The chat app on the session's vLLM engine (the tiny model, 256 positions: the RAG prompt needs them)."""
    app = create_app(settings=ApiSettings(max_body_bytes=MAX_BODY))
    attach_engine(app, engine_host.engine)
    app.state.embedder = LocalEmbeddingBackend(embedder)
    key = behind_gateway(app, gateway_dir, "fuzz-chat")
    embed_model = embedder.model_id

    def fix(method: str, path: str, case: Any, roll: int) -> None:
        body = case.body if isinstance(case.body, dict) else None
        if path == "/v1/chat/completions" and body is not None and roll < 75:
            body["model"] = MODEL
            if roll < 45:  # Gemma's template wants user/assistant turns in order: keep one, as the user's
                one_user_turn(body)
            if roll < 30:
                cap_work(body)
            if roll < 8:
                body["session_id"] = "fuzz-session"
                body.pop("n", None)
        elif path == "/v1/completions" and body is not None and roll < 75:
            body["model"] = MODEL
            if roll < 50:  # what this server refuses by design (400 unsupported_parameter), dropped
                body.pop("suffix", None)
                body.pop("best_of", None)
                if body.get("echo"):
                    body.pop("logprobs", None)
                cap_work(body)
        elif path == "/v1/embeddings" and body is not None and roll < 70:
            body["model"] = embed_model if roll < 60 else f"sentence-transformers/{embed_model.upper()}"
            if roll < 50:
                body.pop("dimensions", None)
        elif path == "/tokenize" and body is not None and roll < 50:
            body["model"] = MODEL
        elif path.startswith("/v1/sessions/") and roll < 40:
            case.path_parameters["session_id"] = "fuzz-session"

    valid = {
        "/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        "/v1/completions": {"model": MODEL, "prompt": "Once", "max_tokens": 2},
        "/v1/embeddings": {"model": embed_model, "input": "hello"},
    }
    served = Served(engine_host, app)
    try:
        yield Target("chat", app, served.url, key, fix, valid, MAX_BODY)
    finally:
        served.close()


@pytest.fixture(scope="module")
def corpus(graph_server, embedder, tmp_path_factory):
    """What the ``graph`` fixture gives, but module-scoped (one refresh for every test here): the session's ArcadeDB,
    emptied, then the RAG unit tests' four documents refreshed into it."""
    settings = GraphSettings.from_env() if graph_server is None else GraphSettings.for_server(graph_server)
    store = GraphStore.connect(settings)
    if graph_server is None:
        store.ensure_schema()
    store.clear()
    folder = tmp_path_factory.mktemp("fuzz-corpus")
    write_docs(folder, DOCS)
    refresh(folder, store, embedder, "v1")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def rag(engine_host, chat, corpus, embedder, gateway_dir) -> Iterator[Target]:
    """The RAG app over the chat app above, reached over HTTP through its gateway with its own key."""
    upstream = ChatUpstream(f"{chat.url}/v1", api_key=chat.key)
    retriever = Retriever(corpus, embedder, reranker=None, version_poll_s=0.0)
    service = RagService(LocalRetrieval(retriever), LocalRerank(make_reranker("default")), upstream,
                         RagSettings(**SETTINGS))
    app = create_rag_app(service)
    key = behind_gateway(app, gateway_dir, "fuzz-rag")

    def fix(method: str, path: str, case: Any, roll: int) -> None:
        body = case.body if isinstance(case.body, dict) else None
        if path == "/v1/chat/completions" and body is not None and roll < 75:
            body["model"] = "rag" if roll < 60 else "rag:kitchen"
            body.pop("n", None)
            body.pop("session_id", None)
            if roll < 30:  # a question the corpus answers: retrieval finds sources and the chat model is asked
                body["messages"] = [{"role": "user", "content": QUESTION}]
            elif roll < 55:
                one_user_turn(body)

    valid = {
        "/v1/chat/completions": {"model": "rag", "messages": [{"role": "user", "content": QUESTION}],
                                 "max_tokens": 2},
        "/v1/retrieve": {"query": "saffron buns", "top_k": 2},
    }
    served = Served(engine_host, app)
    try:
        yield Target("rag", app, served.url, key, fix, valid, 4 * 1024 * 1024)
    finally:
        served.close()


# ---------------------------------------------------------------------------------------------- the drivers
HYPOTHESIS = settings(deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)


def send(tally: Tally, label: str, request: Callable[[], Any], repro: Callable[[], str], *,
         has_body: bool = True) -> Any:
    """Send one request and check its response; an exception out of the app (after its 500, if it sent one)
    is a crash and is recorded as one."""
    started = time.perf_counter()
    try:
        response = request()
    except Exception as err:  # noqa: BLE001 - the finding itself
        tally.record(label, 500, {}, f"crash: {type(err).__name__}: {err}".encode(), repro)
        return None
    finally:
        took = time.perf_counter() - started
        tally.seconds[label] += took
        if DEBUG and took > 0.5:
            print(f"slow: {took:.2f} s {label} {repro()[:300]}")
    tally.record(label, response.status_code, _headers(response), response.content, repro, has_body=has_body)
    return response


def fuzz_schema(target: Target, tally: Tally) -> None:
    """schemathesis' positive and negative strategies, per operation, as ``PLAN`` says."""
    schema = target.schema()
    operations = {(op.method.upper(), op.path): op for op in (r.ok() for r in schema.get_all_operations())}
    missing = {(m, p) for m, p, _ in PLAN[target.name]} - set(operations)
    assert not missing, f"the {target.name} schema lost operations: {missing}"
    client = target.client()
    for (method, path, mode), n in PLAN[target.name].items():
        fuzz_operation(target, tally, client, operations[(method, path)], GenerationMode(mode), scaled(n))


def fuzz_operation(target: Target, tally: Tally, client: Any, op: Any, mode: GenerationMode, n: int) -> None:
    label = f"{op.method.upper()} {op.path} [{mode.value}]"

    @settings(HYPOTHESIS, max_examples=n)
    @given(case=op.as_strategy(generation_mode=mode), roll=st.integers(0, 99))
    def run(case, roll):
        if mode.is_positive:
            target.fix(op.method.upper(), op.path, case, roll)
        send(tally, label, lambda: case.call(session=client, headers=target.auth, timeout=120),
             lambda: case.as_curl_command(base_url="http://testserver"))  # + the API key

    try:
        run()
    except Unsatisfiable:  # no parameters to break: negative mode has nothing to generate
        pass


HOSTILE = [  # raw JSON text for one field's value: every one is tried on every field of every POST operation
    "NaN", "Infinity", "1e309", "5e-324", "-1", "0", "9223372036854775808", "18446744073709551616", "1" + "0" * 5000,
    "true", "null", "[]", "{}", '"\\u0000"', '"\\ud800"', '"x\\udfffy"', '["\\ud800"]', "[" * 3000 + "]" * 3000,
    '"' + "y" * 70_000 + '"',
]
FIELDS = {
    "/v1/chat/completions": [("model",), ("messages",), ("messages", 0), ("messages", 0, "content"),
                             ("messages", 0, "role"), ("messages", 0, "name"), ("max_tokens",),
                             ("max_completion_tokens",), ("n",), ("temperature",), ("top_p",), ("top_k",), ("seed",),
                             ("stop",), ("presence_penalty",), ("frequency_penalty",), ("logprobs",),
                             ("top_logprobs",), ("stream_options",), ("session_id",), ("user",), ("ignore_eos",),
                             ("rag",), ("bogus",)],
    "/v1/completions": [("model",), ("prompt",), ("max_tokens",), ("n",), ("temperature",), ("top_p",), ("top_k",),
                        ("seed",), ("stop",), ("logprobs",), ("echo",), ("best_of",), ("suffix",),
                        ("presence_penalty",), ("bogus",)],
    "/v1/embeddings": [("model",), ("input",), ("encoding_format",), ("dimensions",), ("user",), ("bogus",)],
    "/v1/retrieve": [("query",), ("top_k",), ("mode",), ("collection",), ("rerank",), ("bogus",)],
}
# No control characters in a header value: that is not HTTP, and the server (uvicorn, under bentoml serve too)
# refuses it with its own plain-text 400 before any app sees the request.
CONTENT_TYPES = [None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/xml", "application/json; charset=utf-16", "application/vnd.api+json",
                 "application/json, text/plain", "*/*", "application/x-\u00e9"]
RAW_BODIES = [b"", b"null", b"[]", b"1", b'"x"', b"true", b"{", b"}", b"{]", b'{"model": }', b"\x00", b"\xff\xfe",
              b"\xef\xbb\xbf{}", b'{"a": 1} trailing', b"[" * 100_000, b'{"model": "\xff\xfe"}',
              b'{"model":"a","model":"b"}', b"  \n\t ", b"{'model': 'x'}"]
MARK = "@@HOSTILE@@"


def _set(body: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(body, dict):
        body[head] = _set(body.get(head), rest, value)
    elif isinstance(body, list) and isinstance(head, int) and head < len(body):
        body[head] = _set(body[head], rest, value)
    return body


def fuzz_hostile_fields(target: Target, tally: Tally) -> None:
    """Every ``HOSTILE`` value in every field of every POST operation's valid body (streamed every other time)."""
    client = target.client()
    headers = {"Content-Type": "application/json", **target.auth}
    for path, valid in target.valid_bodies.items():
        streams = path in ("/v1/chat/completions", "/v1/completions")
        for i, (fld, raw) in enumerate((f, r) for f in FIELDS[path] for r in HOSTILE):
            body = copy.deepcopy(valid)
            if streams and i % 2:
                body["stream"] = True
            data = json.dumps(_set(body, fld, MARK)).replace(json.dumps(MARK), raw).encode()
            post(tally, f"POST {path} [hostile field]", client, path, data, headers, f"POST {path} {data[:300]!r}")


def post(tally: Tally, label: str, client: Any, path: str, data: Any, headers: dict[str, str], repro: str) -> None:
    send(tally, label, lambda: client.post(path, data=data, headers=headers, timeout=120), lambda: repro)


def broken_requests(target: Target, path: str) -> st.SearchStrategy[tuple[str, dict[str, str], Any]]:
    """(kind, headers, body) requests beyond the schema for one POST operation: wrong content types, truncated
    JSON, raw garbage, chunked bodies without a length, an oversized body."""
    valid = target.valid_bodies[path]

    def content_type(ctype: str | None) -> tuple[str, dict[str, str], bytes]:
        headers = {} if ctype is None else {"Content-Type": ctype}
        data = json.dumps(valid).encode("utf-16" if ctype and "utf-16" in ctype else "utf-8")
        return f"content-type {ctype!r}", headers, data

    def truncated(cut: int) -> tuple[str, dict[str, str], bytes]:
        data = json.dumps(valid).encode()
        return "truncated JSON", {"Content-Type": "application/json"}, data[: cut % len(data)]

    def chunked(args: tuple[int, int]) -> tuple[str, dict[str, str], Any]:
        size, pieces = args

        def body():  # no Content-Length: the limit has to cut the stream itself
            for _ in range(pieces):
                yield b" " * size
            yield json.dumps(valid).encode()

        return f"chunked {pieces} x {size} B", {"Content-Type": "application/json"}, body

    return st.one_of(
        st.sampled_from(CONTENT_TYPES).map(content_type),
        st.integers(0, 10_000).map(truncated),
        st.sampled_from(RAW_BODIES).map(lambda raw: ("raw body", {"Content-Type": "application/json"}, raw)),
        st.tuples(st.sampled_from([1024, 16 * 1024, 1024 * 1024]), st.integers(1, 80)).map(chunked),
        st.just(("oversized", {"Content-Type": "application/json"}, b" " * (target.max_body + 1))),
    )


def fuzz_broken(target: Target, tally: Tally) -> None:
    client = target.client()
    for path in target.valid_bodies:
        fuzz_broken_bodies(target, tally, client, path)


def fuzz_broken_bodies(target: Target, tally: Tally, client: Any, path: str) -> None:
    @settings(HYPOTHESIS, max_examples=scaled(BROKEN_PER_OPERATION))
    @given(request=broken_requests(target, path))
    def run(request):
        kind, headers, body = request
        shown = body if isinstance(body, bytes) else b"<chunked>"
        post(tally, f"POST {path} [broken body]", client, path, body() if callable(body) else body,
             {**headers, **target.auth}, f"{kind}: POST {path} {headers} {shown[:300]!r}")

    run()


STRAY = [("GET", "/v1/chat/completions"), ("PUT", "/v1/chat/completions"), ("PATCH", "/v1/retrieve"),
         ("DELETE", "/v1/models"), ("POST", "/v1/models"), ("GET", "/v1/embeddings"), ("POST", "/stat"),
         ("GET", "/v1/nope"), ("GET", "/"), ("GET", "/v1/chat/completions/../../etc/passwd"), ("HEAD", "/v1/nope"),
         ("OPTIONS", "/v1/chat/completions"), ("GET", "/v1/sessions/"), ("TRACE", "/v1/models"),
         ("GET", "/v1/models/%ff%fe"), ("GET", "/v1/models/%ED%A0%80"), ("GET", "/v1//models"),
         ("GET", "/v1/models/" + "a" * 8000)]


def fuzz_stray(target: Target, tally: Tally) -> None:
    """Routes and methods outside the schema: 404/405 in the OpenAI format too."""
    client = target.client()

    @settings(HYPOTHESIS, max_examples=scaled(STRAY_PER_APP))
    @given(route=st.sampled_from(STRAY), query=st.sampled_from(["", "?x=1", "?model=%00", "?" + "q" * 3000]))
    def run(route, query):
        method, path = route
        send(tally, f"{method} [stray route]",
             lambda: client.request(method, path + query, headers=target.auth, timeout=60),
             lambda: f"{method} {path}{query}", has_body=method != "HEAD")  # HEAD: no body by definition

    run()


def fuzz_target(target: Target) -> Tally:
    tally = Tally(target.name)
    fuzz_schema(target, tally)
    fuzz_hostile_fields(target, tally)
    fuzz_broken(target, tally)
    fuzz_stray(target, tally)
    return tally


# ---------------------------------------------------------------------------------------------- the tests
def test_chat_api_survives_fuzzing(chat):
    fuzz_target(chat).assert_clean(generated=quota("chat"))


def test_rag_api_survives_fuzzing(rag):
    fuzz_target(rag).assert_clean(generated=quota("rag"))


def test_the_apps_shares_add_up_to_the_whole_budget():
    """Each app's test asserts its share of FUZZ_EXAMPLES; together the shares are the whole budget, so both tests
    passing means FUZZ_EXAMPLES schemathesis requests were sent (checked here without depending on test order)."""
    assert sum(quota(app) for app in PLAN) >= TOTAL
    for app, plan in PLAN.items():  # and each plan asks Hypothesis for at least its app's share
        assert sum(scaled(n) for n in plan.values()) >= quota(app), app


BAD_AUTH = [None, "", "Bearer", "Bearer ", "Bearer garbage", "Basic Zm9vOmJhcg==", "bearer sk-llmship-00000000-x",
            "Bearer sk-llmship-deadbeef-" + "A" * 43, "Bearer sk-llmship-zzzzzzzz-" + "A" * 43,
            "Bearer sk-llmship-", "Token sk-llmship-deadbeef-" + "A" * 43, "Bearer " + "k" * 5000]


def test_gateway_refuses_missing_and_garbage_keys(chat, rag):
    """Every route, with no key, a garbage key or a well-formed unknown one: 401 in the OpenAI format."""
    for target in (chat, rag):
        tally = Tally(f"{target.name} without a valid key")
        fuzz_bad_keys(target, tally)
        tally.assert_clean(total=scaled(AUTH_PER_APP))


def fuzz_bad_keys(target: Target, tally: Tally) -> None:
    client = target.client()
    routes = [(op.method.upper(), op.path.replace("{model_id}", MODEL).replace("{session_id}", "s"))
              for op in (r.ok() for r in target.schema().get_all_operations())]
    bearer = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80).map(lambda s: f"Bearer {s}")

    @settings(HYPOTHESIS, max_examples=scaled(AUTH_PER_APP))
    @given(route=st.sampled_from(routes), auth=st.one_of(st.sampled_from(BAD_AUTH), bearer))
    def run(route, auth):
        method, path = route
        headers = {} if auth is None else {"Authorization": auth}
        body = target.valid_bodies.get(path)
        response = send(tally, f"{method} {path} [bad key]",
                        lambda: client.request(method, path, json=body, headers=headers, timeout=60),
                        lambda: f"{method} {path} Authorization={auth!r}")
        if response is not None and response.status_code != 401:
            tally.failures.append(f"{method} {path} with Authorization={auth!r}: {response.status_code}, not 401")

    run()
