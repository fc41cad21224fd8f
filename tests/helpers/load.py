"""The load harness behind ``tests/reliability/test_load.py`` and ``benchmarks/load_bench.py``: N concurrent
streaming chat clients for a fixed time, every stream checked to the end, every refusal checked for a clean
429/503 with ``Retry-After``, the serving process tree's RSS sampled (see ``benchmarks/load_bench.py`` for the
method and the command line).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from tests.helpers.sse import sse_lines

PROMPTS = [
    "Name three primary colors.",
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain what a compiler does in one sentence.",
    "Give me two tips for sleeping better.",
    "Why is the sky blue?",
    "Translate 'good morning' into Spanish.",
    "List four animals that live in the ocean.",
    "What does a bicycle chain do?",
    "Describe the taste of a lemon.",
    "How many days are there in a leap year?",
    "Suggest a name for a small bakery.",
    "What is the boiling point of water at sea level?",
    "Write one sentence about a rainy afternoon.",
    "What are clouds made of?",
    "Give an example of a renewable energy source.",
    "Summarize the story of Little Red Riding Hood in two sentences.",
    "What is the difference between weather and climate?",
    "Recommend a simple recipe for breakfast.",
    "Why do cats purr?",
    "Tell me a fun fact about the Moon.",
    "What is photosynthesis?",
    "How do you make a paper airplane?",
    "Write a short greeting for a birthday card.",
]


def messages_for(i: int) -> list[dict]:
    return [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


HOST = "127.0.0.1"
CLIENT_KINDS = ("httpx", "openai")
REJECT_STATUSES = (429, 503)
MAX_BACKOFF_S = 5.0
BASELINE_WINDOW_S = 3.0


# ------------------------------------------------------------------------------------------------ the report
class ProcessRss(BaseModel):
    pid: int
    role: str  # arbiter | chat#<worker id> | embedding#<worker id> | <process name>
    start_mb: float | None  # None: the process appeared after the start window (e.g. a respawned worker)
    peak_mb: float
    end_mb: float | None  # None: it was gone before the end window
    growth_pct: float | None
    slope_mb_per_min: float | None  # least-squares trend over the measured window (None: not there throughout)


class RssReport(BaseModel):
    root_pid: int
    interval_s: float
    samples: int
    start_mb: float
    peak_mb: float
    end_mb: float
    growth_pct: float  # end vs start, the whole tree
    peak_growth_pct: float  # peak vs start
    slope_mb_per_min: float  # least-squares trend of the tree over the measured window: a leak shows here first
    processes: list[ProcessRss]


class LoadReport(BaseModel):
    url: str
    model: str
    client: str
    clients: int
    warmup_s: float  # as run: the asked time, and longer until as many streams completed as there are clients
    warmup_complete: bool  # False: the cap (max_warmup_s) ended the warm-up first
    duration_s: float  # the measured window, after the warm-up
    max_tokens: int
    requests: int  # every attempt, warm-up and drain included: requests == ok + clean_rejected + failed
    ok: int
    clean_rejected: int
    failed: int
    rejected_by_status: dict[str, int]
    ok_per_client_min: int  # fairness: the least and most complete streams one client got
    ok_per_client_max: int
    failure_kinds: dict[str, int]
    failure_examples: list[str]
    ok_output_tokens: int  # completion tokens of every ok request (warm-up and drain included)
    window_ok: int  # ok requests that finished inside the measured window
    output_tokens: int  # ok streams' tokens that arrived inside the window (usage, shared out by chunk time)
    tokens_per_s: float
    requests_per_s: float
    ttft_p50_ms: float | None  # ok requests started inside the window: first content chunk
    ttft_p95_ms: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    rss: RssReport | None

    def problems(self, max_rss_growth_pct: float = 10.0) -> list[str]:
        """Why this run fails the reliability bar (empty: it passes)."""
        out = []
        if self.failed:
            kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.failure_kinds.items()))
            out.append(f"{self.failed} failed request(s) at {self.clients} clients ({kinds})")
        if self.ok == 0:
            out.append(f"no request succeeded at {self.clients} clients")
        if self.rss is not None and self.rss.growth_pct > max_rss_growth_pct:
            out.append(f"RSS grew {self.rss.growth_pct:.1f} % (> {max_rss_growth_pct:g} %) at {self.clients} clients")
        return out


# ---------------------------------------------------------------------------------------------- one attempt
@dataclass
class Attempt:
    outcome: str = "failed"  # ok | rejected | failed
    start: float = 0.0
    end: float = 0.0
    ttft: float | None = None
    tokens: int = 0
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content chunk (ok attempts)
    client: int = -1  # which client loop made it
    status: int | None = None
    retry_after_s: float | None = None
    kind: str | None = None  # failure class
    detail: str = ""

    def fail(self, kind: str, detail: str = "") -> Attempt:
        self.outcome, self.kind, self.detail = "failed", kind, detail[:300]
        self.end = self.end or time.perf_counter()
        return self


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return seconds if seconds >= 0 else None


def _error_object(body: Any) -> dict | None:
    """The OpenAI error object from a parsed body (``{"error": {...}}`` or, as the SDK hands it, the inner dict)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner.get("message"):
            return inner
    return None


def classify_status(a: Attempt, status: int, retry_after: str | None, body: Any) -> Attempt:
    """A non-200 answer: a clean rejection (429/503 + Retry-After + OpenAI error body) or a failure."""
    a.end, a.status = time.perf_counter(), status
    if status in REJECT_STATUSES:
        seconds = parse_retry_after(retry_after)
        if seconds is None:
            return a.fail(f"HTTP {status} without Retry-After", str(body)[:200])
        if _error_object(body) is None:
            return a.fail(f"HTTP {status} without an OpenAI error body", str(body)[:200])
        a.outcome, a.retry_after_s = "rejected", seconds
        return a
    return a.fail(f"HTTP {status}", str(body)[:200])


class StreamCheck:
    """Follows one chat completion stream's chunks and says whether it ended complete."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.ttft: float | None = None
        self.chunk_times: list[float] = []
        self.finish: dict[int, str] = {}
        self.usage: dict | None = None
        self.done = False
        self.error: str | None = None
        self.after_usage = False

    def chunk(self, chunk: dict, now: float) -> None:
        if self.error:
            return
        if self.done:
            self.error = "data after [DONE]"
            return
        if chunk.get("error") is not None:
            self.error = f"in-band error: {json.dumps(chunk['error'])[:200]}"
            return
        choices = chunk.get("choices") or []
        if self.usage is not None and choices:
            self.error = "choices after the usage chunk"
            return
        for choice in choices:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.chunk_times.append(now)
                if self.ttft is None:
                    self.ttft = now - self.start
            if choice.get("finish_reason"):
                self.finish[int(choice.get("index", 0))] = choice["finish_reason"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]

    def verdict(self, need_done: bool = True) -> tuple[str, str] | None:
        """None when complete, else (kind, detail)."""
        if self.error:
            kind = "in-band error" if self.error.startswith("in-band") else "malformed stream"
            return kind, self.error
        if need_done and not self.done:
            return "truncated stream", "the stream ended without [DONE]"
        if self.finish.get(0) not in ("stop", "length"):
            return "truncated stream", f"no finish_reason stop|length (saw {self.finish or None})"
        if not self.usage:
            return "truncated stream", "no usage chunk although stream_options.include_usage was set"
        u = self.usage
        if not isinstance(u.get("completion_tokens"), int) or u.get("total_tokens") != (
                (u.get("prompt_tokens") or 0) + u["completion_tokens"]):
            return "malformed stream", f"inconsistent usage {u}"
        return None


def _body(max_tokens: int, model: str, messages: list[dict], temperature: float) -> dict:
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
            "stream": True, "stream_options": {"include_usage": True}}


async def attempt_httpx(client, url: str, body: dict, headers: dict[str, str]) -> Attempt:
    """One streamed chat completion over raw httpx: the strictest check (the ``[DONE]`` sentinel is seen here)."""
    import httpx

    a = Attempt(start=time.perf_counter())
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
            a.status = resp.status_code
            if resp.status_code != 200:
                raw = await resp.aread()
                try:
                    parsed: Any = json.loads(raw)
                except ValueError:
                    parsed = raw.decode(errors="replace")
                return classify_status(a, resp.status_code, resp.headers.get("retry-after"), parsed)
            check = StreamCheck(a.start)
            async for line in sse_lines(resp):
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, "event:" lines
                data = line[5:].strip()
                if data == "[DONE]":
                    check.done = True
                    continue
                try:
                    chunk = json.loads(data)
                except ValueError:
                    check.error = f"unparseable chunk {data[:80]!r}"
                    continue
                check.chunk(chunk, time.perf_counter())
    except httpx.TimeoutException as err:
        return a.fail("timeout", f"{type(err).__name__}: {err}")
    except httpx.RemoteProtocolError as err:
        return a.fail("truncated stream", f"connection closed mid-response: {err}")
    except httpx.TransportError as err:
        return a.fail("connection error", f"{type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - every surprise is a failed request, not a crashed benchmark
        return a.fail("client error", f"{type(err).__name__}: {err}")
    return _finished(a, check, need_done=True)


async def attempt_openai(client, body: dict) -> Attempt:
    """The same through the official SDK (which stops at ``[DONE]`` itself: completeness = finish + usage last)."""
    import openai

    a = Attempt(start=time.perf_counter())
    kwargs = {k: v for k, v in body.items() if k != "stream"}
    try:
        stream = await client.chat.completions.create(stream=True, **kwargs)
        check = StreamCheck(a.start)
        async for chunk in stream:
            check.chunk(chunk.model_dump(exclude_none=True), time.perf_counter())
        check.done = True  # the SDK returns only after [DONE] or the end of the body
    except openai.APIStatusError as err:
        return classify_status(a, err.status_code, err.response.headers.get("retry-after"), err.body)
    except openai.APITimeoutError as err:
        return a.fail("timeout", str(err))
    except openai.APIConnectionError as err:
        return a.fail("connection error", f"{err}: {err.__cause__!r}")
    except openai.APIError as err:  # raised for an in-band {"error": ...} chunk
        return a.fail("in-band error", f"{err.message}: {err.body}")
    except Exception as err:  # noqa: BLE001 - e.g. the transport's "incomplete chunked read"
        kind = "truncated stream" if "incomplete" in str(err) or "peer closed" in str(err) else "client error"
        return a.fail(kind, f"{type(err).__name__}: {err}")
    return _finished(a, check, need_done=False)


def _finished(a: Attempt, check: StreamCheck, *, need_done: bool) -> Attempt:
    """A stream read to its end: ok, or failed with the reason the check found."""
    a.end = time.perf_counter()
    bad = check.verdict(need_done=need_done)
    if bad:
        return a.fail(*bad)
    a.outcome, a.ttft, a.tokens = "ok", check.ttft, int(check.usage["completion_tokens"])
    a.chunk_times = check.chunk_times
    return a


# ---------------------------------------------------------------------------------------------- RSS sampling
def _role(proc) -> str:
    try:
        cmd = proc.cmdline()
    except Exception:  # noqa: BLE001 - gone or a zombie
        return "?"

    def arg(flag: str) -> str | None:
        return cmd[cmd.index(flag) + 1] if flag in cmd and cmd.index(flag) + 1 < len(cmd) else None

    service = arg("--service-name")
    if service:
        short = service.removeprefix("llmship-")
        return f"{short}#{arg('--worker-id') or '?'}"
    if any(part.endswith("bentoml") for part in cmd[:2]) and "serve" in cmd:
        return "arbiter"
    return proc.name()


def find_server_pid(port: int, host: str = HOST) -> int | None:
    """The root of the process tree listening on ``host:port`` (circus shares the socket with its workers)."""
    import psutil

    def listens(conns) -> bool:
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   and c.laddr.ip in (host, "0.0.0.0", "::", "::1") for c in conns)

    try:  # one pid per socket here, even when several processes share it: climb to the topmost holder
        pid = next((c.pid for c in psutil.net_connections(kind="tcp") if c.pid and listens([c])), None)
        if pid is None:
            return None
        proc = psutil.Process(pid)
    except psutil.Error:
        return None
    while True:
        try:
            parent = proc.parent()
            if parent is None or not listens(parent.net_connections(kind="tcp")):
                return proc.pid
        except psutil.Error:  # e.g. pid 1 of a container: not ours to read
            return proc.pid
        proc = parent


class TreeSampler:
    """Samples the RSS of every process in a tree (root and descendants) once per ``interval_s``, in a thread."""

    def __init__(self, root_pid: int, interval_s: float = 1.0) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(root_pid)
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def sample(self) -> dict[int, int]:
        ps = self._psutil
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except ps.Error:
            return {}
        out = {}
        for proc in procs:
            try:
                if proc.status() == ps.STATUS_ZOMBIE:
                    continue
                out[proc.pid] = proc.memory_info().rss
            except ps.Error:
                continue
            if proc.pid not in self.roles:
                self.roles[proc.pid] = _role(proc)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            rss = self.sample()
            if rss:
                self.samples.append((now, rss))
            self._stop.wait(max(0.0, self.interval_s - (time.perf_counter() - now)))

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def report(self, t0: float, t1: float, window_s: float = BASELINE_WINDOW_S) -> RssReport | None:
        """Start = median over [t0, t0 + window], end = median over [t1 - window, t1], peak = max over [t0, t1]."""
        inside = [(t, s) for t, s in self.samples if t0 - 0.5 <= t <= t1 + 0.5]
        if len(inside) < 2:
            return None
        first = [s for t, s in inside if t <= t0 + window_s] or [inside[0][1]]
        last = [s for t, s in inside if t >= t1 - window_s] or [inside[-1][1]]
        mb = 2 ** 20

        def median(values: list[float]) -> float | None:
            return statistics.median(values) / mb if values else None

        start = median([sum(s.values()) for s in first])
        end = median([sum(s.values()) for s in last])
        peak = max(sum(s.values()) for _, s in inside) / mb
        pids = sorted({pid for _, s in inside for pid in s})
        times = [t for t, _ in inside]
        procs = []
        for pid in pids:
            p_start = median([s[pid] for s in first if pid in s]) if all(pid in s for s in first) else None
            p_end = median([s[pid] for s in last if pid in s]) if all(pid in s for s in last) else None
            procs.append(ProcessRss(
                pid=pid, role=self.roles.get(pid, "?"), start_mb=p_start, end_mb=p_end,
                peak_mb=max(s[pid] for _, s in inside if pid in s) / mb,
                growth_pct=(p_end / p_start - 1) * 100 if p_start and p_end else None,
                slope_mb_per_min=_slope(times, [s[pid] / mb for _, s in inside])
                if all(pid in s for _, s in inside) else None))
        return RssReport(root_pid=self.root.pid, interval_s=self.interval_s, samples=len(inside), start_mb=start,
                         peak_mb=peak, end_mb=end, growth_pct=(end / start - 1) * 100,
                         peak_growth_pct=(peak / start - 1) * 100,
                         slope_mb_per_min=_slope(times, [sum(s.values()) / mb for _, s in inside]), processes=procs)


def _slope(times: list[float], values: list[float]) -> float:
    """Least-squares slope of values over times, per minute."""
    n = len(times)
    mt, mv = sum(times) / n, sum(values) / n
    var = sum((t - mt) ** 2 for t in times)
    return 0.0 if var == 0 else 60.0 * sum((t - mt) * (v - mv) for t, v in zip(times, values)) / var


# ---------------------------------------------------------------------------------------------- the load
@dataclass
class _Run:
    attempts: list[Attempt]
    measure_from: float
    stop_at: float
    warmup_s: float  # as it turned out: at least the asked warm-up, longer until `clients` streams completed
    warmup_complete: bool


async def _load(url: str, model: str, clients: int, warmup_s: float, max_warmup_s: float, duration_s: float,
                api_key: str | list[str] | None, max_tokens: int, client_kind: str, temperature: float, read_timeout_s: float,
                drain_timeout_s: float) -> _Run:
    import httpx

    keys = [api_key] if isinstance(api_key, str) or api_key is None else list(api_key)  # client i: keys[i % n]
    timeout = httpx.Timeout(read_timeout_s, connect=10.0)
    if client_kind == "openai":
        import openai

        sdks = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key or "unused", max_retries=0,
                                   timeout=read_timeout_s) for key in keys]
        http = None

        def one(body: dict, idx: int):
            return attempt_openai(sdks[idx % len(keys)], body)
    else:
        sdks = []
        limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
        http = httpx.AsyncClient(timeout=timeout, limits=limits)
        headers = [{"Authorization": f"Bearer {key}"} if key else {} for key in keys]

        def one(body: dict, idx: int):
            return attempt_httpx(http, url, body, headers[idx % len(keys)])

    attempts: list[Attempt] = []
    window = {"stop_at": math.inf}
    completed = [0]
    warmed = asyncio.Event()
    rng = random.Random(12345)

    async def client_loop(idx: int) -> None:
        i = idx
        while time.perf_counter() < window["stop_at"]:
            a = await one(_body(max_tokens, model, messages_for(i), temperature), idx)
            a.client = idx
            attempts.append(a)
            i += clients
            if a.outcome == "ok":
                completed[0] += 1
                if completed[0] >= clients:
                    warmed.set()
                continue
            if a.outcome == "rejected":  # honour Retry-After (+ jitter, so the rejected do not return as one herd)
                pause = min(MAX_BACKOFF_S, a.retry_after_s or 0.0) + rng.uniform(0.0, 0.5)
            else:
                pause = 0.5  # a dead server must not turn into a busy loop of connection errors
            await asyncio.sleep(max(0.0, min(pause, window["stop_at"] - time.perf_counter())))

    loop_start = time.perf_counter()
    tasks = [asyncio.ensure_future(client_loop(i)) for i in range(clients)]
    try:
        # Warm-up: the asked time, and on until as many streams completed as there are clients, so every batch
        # slot (at most one per client) has held a request to its end (KV buffers, arenas at their working size)
        # before "start" is taken: 5 s is plenty for the tiny model, far too little for a real one on CPU.
        await asyncio.sleep(warmup_s)
        try:
            await asyncio.wait_for(warmed.wait(), max(0.0, max_warmup_s - (time.perf_counter() - loop_start)))
        except TimeoutError:
            pass
        measure_from = time.perf_counter()
        window["stop_at"] = measure_from + duration_s
        await asyncio.sleep(duration_s)
        _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
        for task in pending:  # a request still open long after the end: it hung
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            now = time.perf_counter()
            attempts.extend(Attempt(start=now, end=now).fail(
                "hung", f"still open {drain_timeout_s:.0f}s after the load ended") for _ in pending)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        if http is not None:
            await http.aclose()
        for sdk in sdks:
            await sdk.close()
    return _Run(attempts, measure_from, window["stop_at"], measure_from - loop_start, warmed.is_set())


def run_load(url: str, model: str, clients: int, duration_s: float, api_key: str | list[str] | None = None, *,
             warmup_s: float = 5.0, max_warmup_s: float = 180.0, max_tokens: int = 64, client: str = "httpx",
             temperature: float = 0.7, server_pid: int | None = None, rss_interval_s: float = 1.0,
             read_timeout_s: float = 120.0, drain_timeout_s: float | None = None) -> LoadReport:
    """``clients`` streaming clients against ``url``: a warm-up, then ``duration_s`` measured; every attempt classified.

    The warm-up lasts ``warmup_s`` and longer, until ``clients`` streams have completed (at most
    ``max_warmup_s``). RSS is sampled from ``server_pid``'s process tree (default: whatever listens on the
    URL's port on this machine; None in the report when it cannot be found). Only 127.0.0.1 URLs are accepted.
    """
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load is only ever sent to this machine (127.0.0.1), not {parsed.hostname!r}")
    if client not in CLIENT_KINDS:
        raise ValueError(f"client must be one of {CLIENT_KINDS}")
    url = url.rstrip("/")
    if server_pid is None and parsed.port:
        server_pid = find_server_pid(parsed.port)
    sampler = TreeSampler(server_pid, rss_interval_s).start() if server_pid else None
    try:
        run = asyncio.run(_load(
            url, model, clients, warmup_s, max(warmup_s, max_warmup_s), duration_s, api_key, max_tokens, client,
            temperature, read_timeout_s, drain_timeout_s if drain_timeout_s is not None else read_timeout_s + 30.0))
    finally:
        if sampler is not None:
            sampler.stop()
    rss = sampler.report(run.measure_from, run.stop_at) if sampler is not None else None
    return summarize(run, url=url, model=model, client=client, clients=clients, duration_s=duration_s,
                     max_tokens=max_tokens, rss=rss)


def summarize(run: _Run, *, url: str, model: str, client: str, clients: int, duration_s: float, max_tokens: int,
              rss: RssReport | None) -> LoadReport:
    attempts, t0, t1 = run.attempts, run.measure_from, run.stop_at
    ok = [a for a in attempts if a.outcome == "ok"]
    rejected = [a for a in attempts if a.outcome == "rejected"]
    failed = [a for a in attempts if a.outcome == "failed"]
    window = [a for a in ok if t0 <= a.end <= t1]
    started = [a for a in ok if t0 <= a.start <= t1]
    ttfts = [a.ttft for a in started if a.ttft is not None]
    e2e = [a.end - a.start for a in started]
    # tokens generated inside the window: each ok stream's tokens, shared out over its content chunks by arrival
    # time (a request of a slow model can span the window's edges; counting it whole at its end would be lumpy)
    tokens = 0.0
    for a in ok:
        if a.chunk_times:
            tokens += a.tokens * sum(t0 <= t <= t1 for t in a.chunk_times) / len(a.chunk_times)
    kinds: dict[str, int] = {}
    for a in failed:
        kinds[a.kind or "?"] = kinds.get(a.kind or "?", 0) + 1
    by_status: dict[str, int] = {}
    for a in rejected:
        by_status[str(a.status)] = by_status.get(str(a.status), 0) + 1
    examples, seen = [], set()
    for a in failed:
        if a.kind not in seen:
            seen.add(a.kind)
            examples.append(f"{a.kind}: {a.detail}")
    per_client = [0] * clients
    for a in ok:
        if 0 <= a.client < clients:
            per_client[a.client] += 1
    span = max(t1 - t0, 1e-9)
    ms = lambda v: None if v is None else v * 1000
    return LoadReport(
        url=url, model=model, client=client, clients=clients, warmup_s=run.warmup_s,
        warmup_complete=run.warmup_complete, ok_per_client_min=min(per_client), ok_per_client_max=max(per_client),
        duration_s=duration_s, max_tokens=max_tokens,
        requests=len(attempts), ok=len(ok), clean_rejected=len(rejected), failed=len(failed),
        rejected_by_status=by_status, failure_kinds=kinds, failure_examples=examples[:8],
        ok_output_tokens=sum(a.tokens for a in ok), window_ok=len(window), output_tokens=round(tokens),
        tokens_per_s=tokens / span, requests_per_s=len(window) / span,
        ttft_p50_ms=ms(_pct(ttfts, 50)), ttft_p95_ms=ms(_pct(ttfts, 95)), e2e_p50_ms=ms(_pct(e2e, 50)),
        e2e_p95_ms=ms(_pct(e2e, 95)), rss=rss)


# ------------------------------------------------------------------------------------------------ reporting
def _f(v, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def table(reports: list[LoadReport]) -> str:
    rows = [
        ("warm-up s", lambda r: f"{r.warmup_s:.0f}" + ("" if r.warmup_complete else " (cap)")),
        ("requests (all attempts)", lambda r: str(r.requests)),
        ("ok (complete streams)", lambda r: str(r.ok)),
        ("clean rejections 429/503", lambda r: f"{r.clean_rejected}" + (
            f" ({', '.join(f'{k}: {v}' for k, v in sorted(r.rejected_by_status.items()))})"
            if r.rejected_by_status else "")),
        ("failed", lambda r: str(r.failed)),
        ("ok per client min / max", lambda r: f"{r.ok_per_client_min} / {r.ok_per_client_max}"),
        ("output tokens/s", lambda r: f"{r.tokens_per_s:.1f}"),
        ("completed requests/s", lambda r: f"{r.requests_per_s:.2f}"),
        ("TTFT p50 / p95 ms", lambda r: f"{_f(r.ttft_p50_ms)} / {_f(r.ttft_p95_ms)}"),
        ("latency p50 / p95 ms", lambda r: f"{_f(r.e2e_p50_ms)} / {_f(r.e2e_p95_ms)}"),
        ("RSS start / peak / end MB", lambda r: "n/a" if r.rss is None else
         f"{r.rss.start_mb:.0f} / {r.rss.peak_mb:.0f} / {r.rss.end_mb:.0f}"),
        ("RSS growth end / peak %", lambda r: "n/a" if r.rss is None else
         f"{r.rss.growth_pct:+.1f} / {r.rss.peak_growth_pct:+.1f}"),
        ("RSS trend MB/min", lambda r: "n/a" if r.rss is None else f"{r.rss.slope_mb_per_min:+.1f}"),
    ]
    heads = [f"{r.clients} clients" for r in reports]
    cols = [max(len(h), *(len(fn(r)) for _, fn in rows)) + 3 for h, r in zip(heads, reports)]
    lines = [f"{'':<27}" + "".join(f"{h:>{w}}" for h, w in zip(heads, cols))]
    lines.append("-" * len(lines[0]))
    for label, fn in rows:
        lines.append(f"{label:<27}" + "".join(f"{fn(r):>{w}}" for r, w in zip(reports, cols)))
    return "\n".join(lines)


def process_table(report: LoadReport) -> str:
    if report.rss is None:
        return "  RSS: not measured (no local process listens on the URL's port; give --server-pid)"
    lines = [(f"  RSS per process at {report.clients} clients ({report.rss.samples} samples, every "
              f"{report.rss.interval_s:g}s; start/end = median of {BASELINE_WINDOW_S:g}s windows):")]
    for p in sorted(report.rss.processes, key=lambda p: p.role):
        lines.append(f"    {p.role:<14} pid {p.pid:<8} start {_f(p.start_mb):>5} MB  peak {p.peak_mb:5.0f} MB  "
                     f"end {_f(p.end_mb):>5} MB  growth {_f(p.growth_pct, '{:+.1f}'):>6} %  "
                     f"trend {_f(p.slope_mb_per_min, '{:+.1f}'):>5} MB/min")
    return "\n".join(lines)


def ratio_lines(main: LoadReport, peer: LoadReport) -> list[str]:
    def r(a, b):
        return None if a is None or not b else a / b

    tok = r(main.tokens_per_s, peer.tokens_per_s)
    ttft = r(main.ttft_p50_ms, peer.ttft_p50_ms)
    lines = [f"ratios, {main.clients} clients / {peer.clients} clients (same server, same run):",
             (f"  output tokens/s {_f(tok, '{:.2f}x')}   (~1.0x: past the batch size, more clients queue instead "
              f"of costing throughput)"),
             (f"  TTFT p50        {_f(ttft, '{:.2f}x')}   (grows with the queue: the waiting share of "
              f"{main.clients} clients)")]
    if main.rss and peer.rss:
        lines.append(f"  RSS end         {main.rss.end_mb / peer.rss.end_mb:.2f}x")
    return lines


# ------------------------------------------------------------------------------------------------ servers
