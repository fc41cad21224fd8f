"""SIGKILL one of two chat workers mid-stream: its streams fail at once, the other's finish, BentoML respawns it.

The chat service runs with ``LLMSHIP_CHAT_WORKERS=2`` (two processes that share one listening socket; the
kernel hands each new connection to one of them). Streams are opened on separate connections with
``ignore_eos`` and a few hundred tokens, so they run for seconds; each one's worker is found from the TCP
connection itself (psutil: the worker process holding the server end of the client's port). One worker that
holds streams is SIGKILLed after every stream has its first tokens, with at least one stream on the other.

Proved here:
- no stream hangs: every client ends within its timeouts, either complete (finish_reason ``length``, usage with
  exactly max_tokens, ``[DONE]``) or with an error — and the killed worker's streams error before the surviving
  worker has finished a single one of its streams;
- every stream on the surviving worker finishes complete, untouched by the other's death;
- BentoML's process manager (circus) starts a new process for the killed worker (same worker id, new pid) —
  measured, not assumed: without it this test fails — and that new process loads the model and answers;
- ``/readyz`` is 200 and new streaming requests succeed afterwards;
- the killed worker's vLLM engine processes do not outlive it (``llmship.engine.reaper``): before, they stayed
  as orphans holding the model's memory for the rest of the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from tests.helpers.sse import sse_lines
from tests.reliability.conftest import NAME, answering_pids, chat_server, chat_workers

MAX_TOKENS = 800  # with ignore_eos: seconds per stream on the tiny model (the window is 1,024 tokens)
FIRST_STREAMS = 8
EXTRA_STREAMS = 8  # opened one by one only if the kernel put every first stream on the same worker
RESPAWN_WAIT_S = 30.0
READY_WAIT_S = 90.0


@pytest.fixture(scope="module")
def server(slow_tiny_model, tmp_path_factory):
    with chat_server(slow_tiny_model, tmp_path_factory.mktemp("kill-home"), workers=2) as info:
        yield info


@dataclass
class StreamResult:
    index: int
    client_port: int | None = None
    content_chunks: int = 0
    finish: str | None = None
    usage: dict | None = None
    done: bool = False
    error: str | None = None
    ended_at: float = 0.0
    first_token: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def complete(self) -> bool:
        return (self.error is None and self.done and self.finish == "length" and self.usage is not None
                and self.usage["completion_tokens"] == MAX_TOKENS)


async def _stream(url: str, r: StreamResult) -> StreamResult:
    body = {"model": NAME, "messages": [{"role": "user", "content": f"Tell story number {r.index}."}],
            "max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0.8, "stream": True,
            "stream_options": {"include_usage": True}}
    try:
        # its own client: its own connection, so the kernel picks a worker per stream. The read timeout is not what
        # judges the kill (that is measured against the surviving worker's streams below): 20 s once cut off a
        # 9th stream opened onto a worker decoding 8 others on its one core, before any kill
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as client, \
                client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
            r.client_port = resp.extensions["network_stream"].get_extra_info("client_addr")[1]
            if resp.status_code != 200:
                r.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                return r
            async for line in sse_lines(resp):
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    r.done = True
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    r.error = f"in-band error: {chunk['error']}"
                    continue
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        r.content_chunks += 1
                        r.first_token.set()
                    r.finish = choice.get("finish_reason") or r.finish
                r.usage = chunk.get("usage") or r.usage
    except (httpx.HTTPError, OSError) as err:
        r.error = f"{type(err).__name__}: {err}"
    finally:
        r.ended_at = time.perf_counter()
        r.first_token.set()  # wake a waiter even when the stream died before its first token
    return r


def _running(results: list[StreamResult]) -> list[StreamResult]:
    """Streams still generating: no error, no finish_reason, no ``[DONE]`` yet."""
    return [r for r in results if r.error is None and r.finish is None and not r.done]


def _worker_of(port: int, workers: dict[int, str], client_port: int) -> int | None:
    """The chat worker holding the server end of the connection from ``client_port``."""
    for pid in workers:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == port and conn.raddr and conn.raddr.port == client_port:
                    return pid
        except psutil.Error:
            continue
    return None


def test_sigkill_one_worker_mid_stream(server):
    before = chat_workers(server.pid)
    assert len(before) == 2, f"expected 2 chat workers under bentoml serve, found {before}"
    # both workers loaded and answering before the test starts
    assert answering_pids(server.url, set(before), READY_WAIT_S) >= set(before)

    async def scenario():
        results: list[StreamResult] = []
        tasks: list[asyncio.Task] = []

        async def open_stream() -> StreamResult:
            r = StreamResult(index=len(results))
            results.append(r)
            tasks.append(asyncio.ensure_future(_stream(server.url, r)))
            await asyncio.wait_for(r.first_token.wait(), 30)
            return r

        await asyncio.gather(*(open_stream() for _ in range(FIRST_STREAMS)))
        owners = {r.index: _worker_of(server.port, before, r.client_port) for r in results}
        for _ in range(EXTRA_STREAMS):  # make sure both workers hold at least one running stream
            if {owners[r.index] for r in _running(results)} >= set(before):
                break
            r = await open_stream()
            owners[r.index] = _worker_of(server.port, before, r.client_port)
        failed = [f"stream {r.index}: {r.error}" for r in results if r.error is not None]
        assert not failed, f"streams failed before the kill: {failed}"
        live = _running(results)  # a stream that already finished (complete) is fine; it is judged below
        assert {owners[r.index] for r in live} >= set(before), \
            f"running streams by worker: {[(r.index, owners[r.index]) for r in live]} of {len(results)}"

        victim = max(before, key=lambda pid: sum(owners[r.index] == pid for r in live))
        engine = [p for p in psutil.Process(victim).children(recursive=True) if p.cmdline()[:1] and
                  p.cmdline()[0].startswith("VLLM")]
        assert engine, "no vLLM engine process under the worker"
        killed_at = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*tasks), 90)  # nothing may hang
        return results, owners, victim, killed_at, engine, [r.index for r in live]

    results, owners, victim, killed_at, engine, live_at_kill = asyncio.run(scenario())
    on_victim = [r for r in results if owners[r.index] == victim]
    on_survivor = [r for r in results if owners[r.index] != victim]
    for r in results:
        print(f"stream {r.index:>2} worker {owners[r.index]}{' (killed)' if r in on_victim else ''}: "
              f"{r.content_chunks} chunks, finish {r.finish}, done {r.done}, "
              f"ended {r.ended_at - killed_at:+.2f}s after the kill, error {r.error}")

    # the killed worker's streams: each one failed (it was mid-stream), promptly, visibly to the client. "Promptly"
    # is measured against this run's own baseline, not a fixed number of seconds: a killed stream must end before
    # the first stream on the surviving worker that was still running at the kill, with tokens left to decode, has
    # finished them (a stream that hung until a client timeout would end long after every survivor). Survivor streams
    # that completed before the kill say nothing about promptness and are left out of the baseline
    running_survivors = [r for r in on_survivor if r.index in live_at_kill]
    assert on_victim and running_survivors
    first_survivor_done = min(r.ended_at for r in running_survivors)
    for r in on_victim:
        assert r.complete or r.error is not None, f"stream {r.index} ended silently incomplete: {r}"
        assert r.ended_at <= first_survivor_done, (
            f"stream {r.index} took {r.ended_at - killed_at:.1f}s to fail, longer than the surviving worker took "
            f"to finish a stream ({first_survivor_done - killed_at:.1f}s)")
    assert any(r.error for r in on_victim), "the kill did not interrupt any stream"
    # the surviving worker's streams: all finished, complete
    for r in on_survivor:
        assert r.complete, f"stream {r.index} on the surviving worker did not complete: {r}"

    # circus respawns the killed worker: a new pid with the same worker id
    deadline = time.monotonic() + RESPAWN_WAIT_S
    while time.monotonic() < deadline:
        after = chat_workers(server.pid)
        if len(after) == 2 and victim not in after:
            break
        time.sleep(0.2)
    respawned_after = time.perf_counter() - killed_at
    assert len(after) == 2 and victim not in after, f"no respawn within {RESPAWN_WAIT_S:.0f}s: {after}"
    (new_pid,) = set(after) - set(before)
    assert after[new_pid] == before[victim]
    print(f"worker {before[victim]}: pid {victim} killed, pid {new_pid} running {respawned_after:.1f}s later")
    # its engine core and model worker were reaped, not left as orphans beside the new worker's engine
    _, orphans = psutil.wait_procs(engine, timeout=RESPAWN_WAIT_S)
    orphans = [p for p in orphans if p.status() != psutil.STATUS_ZOMBIE]
    assert not orphans, f"the killed worker's engine processes outlived it: {[(p.pid, p.name()) for p in orphans]}"

    # ready again, and the new process itself answers (it has loaded the model)
    deadline = time.monotonic() + READY_WAIT_S
    while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "/readyz did not return to 200"
        time.sleep(0.5)
    assert new_pid in answering_pids(server.url, {new_pid}, READY_WAIT_S), "the respawned worker never answered"
    print(f"respawned worker answering {time.perf_counter() - killed_at:.1f}s after the kill")

    # and new streams succeed
    async def fresh():
        return await asyncio.wait_for(asyncio.gather(*(_stream(server.url, StreamResult(index=100 + i))
                                                       for i in range(6))), 90)

    for r in asyncio.run(fresh()):
        assert r.complete, f"a request after the respawn failed: {r}"
