"""Session benchmark: a 10-turn conversation with server-side sessions, prefix caching on vs off, in one run.

    python benchmarks/session_bench.py [--turns 10] [--history-tokens 1200] [--sessions 3] [--max-tokens 32]
                                       [--model-dir DIR | --tiny] [--enforce-eager] [--kv-cache-gb 1.0] [--out FILE]

The llmship chat service (``bentoml serve bentos.chat.service:Chat`` via ``llmship.serving.process.start``, a
throw-away registry and LLMSHIP_HOME, the gateway as deployed by default: auth off) serves the model. A session
is ``--turns`` chat requests with one ``session_id``: turn 1 is a long first message (about
``--history-tokens`` tokens of the served model's tokenizer: the first paragraphs of data/eval/heldout.txt
under a line unique to the session, so no session shares a cached block with another or with the warm-up),
and every later turn sends only a short new user message: the server puts the history in front of it. Each
turn is streamed and timed on the client (TTFT: the first content chunk); vLLM's
``vllm:prefix_cache_queries_total`` / ``vllm:prefix_cache_hits_total`` are read from the service's ``/metrics``
before and after every turn, so each turn's prefix-cache hit rate is its own. ``--sessions`` sessions run one
after another; the table shows each turn's median.

Peer in the same run: a second start of the same service with ``LLMSHIP_ENABLE_PREFIX_CACHING=false`` and the
same sessions. With caching, a turn's prefill is only what is new since the last turn, so TTFT should stay flat
as the history grows (target: turn 10 / turn 1 TTFT <= 0.5); without it, every turn prefills the whole history.

The model is the default gemma-3-270m (built and cached as deploy_llm does), ``--model-dir`` (a folder with
``hf/``), or ``--tiny``: a tiny random Gemma-3 (its window raised to --max-model-len) with the tests' engine
settings, a smoke run of the path. Results go to ``--out`` (default ``$LLMSHIP_HOME/bench/session_bench.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._lib import raise_interrupt
from benchmarks.serve_bench import (
    DEFAULT_SOURCE,
    Cleanup,
    _f,
    register_champion,
    resolve_model_dir,
    serve_config,
    start_llmship,
    tiny_model_dir,
    use_user_compile_cache,
)
from tests.helpers.sse import sse_lines

QUERIES = "vllm:prefix_cache_queries_total"
HITS = "vllm:prefix_cache_hits_total"
FOLLOW_UPS = [
    "Summarize the first paragraph in one sentence.",
    "Which ingredients are named in these notes?",
    "What does the baker watch instead of the clock?",
    "Where is the town of Port Alder?",
    "What happens at the harbor in the morning?",
    "Why are the streets behind the harbor hard for cars?",
    "Give me a title for these notes.",
    "Which part of the notes did you find most useful, and why?",
    "List three words that describe the town.",
    "Write one question a visitor might ask about the notes.",
    "Say in one sentence what the notes have in common.",
]


# ------------------------------------------------------------------------------------------------ the prompts
def history_message(tokenizer, target_tokens: int, tag: str) -> tuple[str, int]:
    """A first message of about ``target_tokens`` tokens: whole paragraphs of heldout.txt under a unique line."""
    paragraphs = [p.strip() for p in (REPO / "data/eval/heldout.txt").read_text().split("\n\n") if p.strip()]
    head = f"Session {tag}. Here are my notes; I will ask you about them.\n\n"
    text, count = head, len(tokenizer.encode(head, add_special_tokens=False))
    for i, paragraph in enumerate(paragraphs * 4):  # repeated if the corpus is short for this tokenizer
        candidate = text + ("\n\n" if i else "") + paragraph
        longer = len(tokenizer.encode(candidate, add_special_tokens=False))
        if longer >= target_tokens and i and longer - target_tokens > target_tokens - count:
            break  # the paragraph would overshoot more than leaving it out falls short
        text, count = candidate, longer
        if count >= target_tokens:
            break
    return text, count


def follow_up(k: int) -> str:
    return FOLLOW_UPS[(k - 2) % len(FOLLOW_UPS)]


# ------------------------------------------------------------------------------------------------ metrics
def prefix_counters(text: str) -> tuple[float, float]:
    """(queries, hits) in tokens, summed over every engine and label set, from Prometheus text."""
    totals = {QUERIES: 0.0, HITS: 0.0}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            try:
                totals[name] += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                pass
    return totals[QUERIES], totals[HITS]


async def read_counters(client, url: str) -> tuple[float, float]:
    resp = await client.get(f"{url}/metrics")
    resp.raise_for_status()
    return prefix_counters(resp.text)


# ------------------------------------------------------------------------------------------------ one session
@dataclass
class Turn:
    turn: int
    ttft_ms: float | None
    total_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    queried_tokens: float
    hit_tokens: float
    error: str | None = None

    @property
    def hit_rate(self) -> float | None:
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else None


async def stream_turn(client, url: str, body: dict) -> tuple[float | None, float, dict | None, str | None]:
    """One streamed chat request: (TTFT s, total s, usage, error). A 409 (the session is still closing the last
    turn) is retried for a moment."""
    for _ in range(40):
        start = time.perf_counter()
        ttft, usage = None, None
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
            if resp.status_code == 409:
                await resp.aread()
                await asyncio.sleep(0.05)
                continue
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")[:300]
                return None, time.perf_counter() - start, None, f"HTTP {resp.status_code}: {text}"
            async for line in sse_lines(resp):
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    return ttft, time.perf_counter() - start, None, f"stream error: {str(chunk['error'])[:300]}"
                if ttft is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                    ttft = time.perf_counter() - start
                if chunk.get("usage"):
                    usage = chunk["usage"]
        return ttft, time.perf_counter() - start, usage, None
    return None, 0.0, None, "HTTP 409: the session stayed busy"


async def run_sessions(url: str, model: str, first_messages: list[str], turns: int, max_tokens: int) -> list[list[Turn]]:
    import httpx

    out: list[list[Turn]] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=10.0)) as client:
        # warm-up: a short request outside any session (shares no block with the sessions' first messages)
        await stream_turn(client, url, {"model": model, "messages": [{"role": "user", "content": "Hello!"}],
                                        "max_tokens": 4, "temperature": 0.0, "stream": True})
        for first in first_messages:
            sid = f"session-bench-{uuid.uuid4().hex[:12]}"
            session: list[Turn] = []
            for k in range(1, turns + 1):
                body = {"model": model, "session_id": sid, "max_tokens": max_tokens, "temperature": 0.0,
                        "messages": [{"role": "user", "content": first if k == 1 else follow_up(k)}],
                        "stream": True, "stream_options": {"include_usage": True}}
                q0, h0 = await read_counters(client, url)
                ttft, total, usage, error = await stream_turn(client, url, body)
                q1, h1 = await read_counters(client, url)
                for _ in range(20):  # the engine's stats for the turn may land a moment after its last chunk
                    if q1 > q0 or error:
                        break
                    await asyncio.sleep(0.05)
                    q1, h1 = await read_counters(client, url)
                session.append(Turn(k, None if ttft is None else ttft * 1000, total * 1000,
                                    (usage or {}).get("prompt_tokens"), (usage or {}).get("completion_tokens"),
                                    q1 - q0, h1 - h0, error))
                print(f"    turn {k:>2}: prompt {session[-1].prompt_tokens or '-':>5} tokens  TTFT "
                      f"{_f(session[-1].ttft_ms):>5} ms  prefix-cache hits {_f(session[-1].hit_rate, '{:.0%}'):>4}"
                      + (f"  ERROR {error}" if error else ""), flush=True)
                if error:
                    break
            out.append(session)
            await client.delete(f"{url}/v1/sessions/{sid}")
    return out


def per_turn(sessions: list[list[Turn]], turns: int) -> list[dict]:
    """Each turn's median over the sessions (TTFT, prompt tokens) and its pooled hit rate."""
    rows = []
    for k in range(1, turns + 1):
        ts = [s[k - 1] for s in sessions if len(s) >= k and s[k - 1].error is None]
        ttfts = [t.ttft_ms for t in ts if t.ttft_ms is not None]
        queried, hits = sum(t.queried_tokens for t in ts), sum(t.hit_tokens for t in ts)
        rows.append({"turn": k, "sessions": len(ts), "ttft_ms": statistics.median(ttfts) if ttfts else None,
                     "ttft_ms_all": ttfts, "prompt_tokens": statistics.median(
                         [t.prompt_tokens for t in ts if t.prompt_tokens is not None] or [0]) or None,
                     "queried_tokens": queried, "hit_tokens": hits, "hit_rate": hits / queried if queried else None})
    return rows


def summary(rows: list[dict]) -> dict:
    first, last = rows[0], rows[-1]
    later = rows[1:]
    queried, hits = sum(r["queried_tokens"] for r in later), sum(r["hit_tokens"] for r in later)
    ratio = last["ttft_ms"] / first["ttft_ms"] if first["ttft_ms"] and last["ttft_ms"] is not None else None
    return {"ttft_last_over_first": ratio, "hit_rate_after_turn_1": hits / queried if queried else None,
            "queried_tokens": sum(r["queried_tokens"] for r in rows), "hit_tokens": sum(r["hit_tokens"] for r in rows)}


def table(on: list[dict], off: list[dict] | None) -> str:
    head = f"{'turn':>4} {'prompt tok':>10} | {'caching on: TTFT ms':>19} {'hit rate':>8}"
    if off is not None:
        head += f" | {'caching off: TTFT ms':>20} {'hit rate':>8}"
    lines = [head, "-" * len(head)]
    for i, r in enumerate(on):
        line = (f"{r['turn']:>4} {_f(r['prompt_tokens']):>10} | {_f(r['ttft_ms']):>19} "
                f"{_f(r['hit_rate'], '{:.0%}'):>8}")
        if off is not None:
            o = off[i] if i < len(off) else {"ttft_ms": None, "hit_rate": None}
            line += f" | {_f(o['ttft_ms']):>20} {_f(o['hit_rate'], '{:.0%}'):>8}"
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--history-tokens", type=int, default=1200, help="length of the first message, in tokens")
    p.add_argument("--sessions", type=int, default=3, help="sessions per server (medians per turn)")
    p.add_argument("--max-tokens", type=int, default=32, help="tokens per answer (they join the history)")
    p.add_argument("--no-peer", action="store_true", help="skip the run with prefix caching off")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="model source when --model-dir is not given")
    p.add_argument("--model-dir", help="a folder with hf/")
    p.add_argument("--tiny", action="store_true", help="a tiny random Gemma-3 with the tests' engine settings")
    p.add_argument("--enforce-eager", action="store_true", help="no torch.compile (default: compiled, as deployed)")
    p.add_argument("--kv-cache-gb", type=float, default=None, help="KV-cache memory (default 1.0; --tiny 0.25)")
    p.add_argument("--max-model-len", type=int, default=2048, help="the served window (history + turns fit in it)")
    p.add_argument("--dtype", default=None, help="auto | bfloat16 | float16 | float32 (default auto; --tiny float32)")
    p.add_argument("--threads", type=int, default=None, help="engine CPU threads (default 0: vLLM's binding)")
    p.add_argument("--wait-s", type=float, default=600.0, help="how long a server may take to become ready")
    p.add_argument("--out", help="JSON results (default $LLMSHIP_HOME/bench/session_bench.json)")
    p.add_argument("--keep-home", action="store_true", help="keep the temp LLMSHIP_HOME (registry, server logs)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.turns < 2 or args.sessions < 1 or args.history_tokens < 16 or args.max_tokens < 1:
        raise SystemExit("error: --turns >= 2, --sessions >= 1, --history-tokens >= 16, --max-tokens >= 1")
    if args.tiny and args.model_dir:
        raise SystemExit("error: --tiny and --model-dir exclude each other")
    need = args.history_tokens + 64 + (args.turns - 1) * 48 + args.turns * args.max_tokens
    if need > args.max_model_len:
        raise SystemExit(f"error: {args.turns} turns over a {args.history_tokens}-token history need about {need} "
                         f"tokens of context; raise --max-model-len (now {args.max_model_len})")
    from transformers import AutoTokenizer

    from llmship import paths

    real_home = paths.home()
    out_path = Path(args.out) if args.out else real_home / "bench" / "session_bench.json"
    tmp_home = Path(tempfile.mkdtemp(prefix="llmship-session-bench-"))
    cleanup = Cleanup()
    if not args.keep_home:
        cleanup.push("temp home", lambda: shutil.rmtree(tmp_home, ignore_errors=True))
    model_dir = (tiny_model_dir(tmp_home / "tiny", max_position_embeddings=args.max_model_len) if args.tiny
                 else resolve_model_dir(args, real_home))
    hf_dir = model_dir / "hf"
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    firsts = [history_message(tokenizer, args.history_tokens, uuid.uuid4().hex[:8]) for _ in range(args.sessions)]
    cfg_args = argparse.Namespace(tiny=args.tiny, max_model_len=args.max_model_len, max_batch=None,
                                  kv_cache_gb=args.kv_cache_gb, dtype=args.dtype, threads=args.threads,
                                  enforce_eager=args.enforce_eager)
    config_on = serve_config(cfg_args).model_copy(update={"prefix_caching": True})
    configs = {"on": config_on}
    if not args.no_peer:
        configs["off"] = config_on.model_copy(update={"prefix_caching": False})

    previous_sigterm = signal.signal(signal.SIGTERM, raise_interrupt)
    use_user_compile_cache(real_home)
    os.environ["LLMSHIP_HOME"] = str(tmp_home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["BENTOML_HOME"] = str(tmp_home / "bentoml")
    os.environ["HF_HUB_OFFLINE"] = "1"
    settings = config_on.engine_settings(f"path:{hf_dir}")
    engine_line = (f"engine: max_model_len {settings.max_model_len}, KV cache {settings.kv_cache_gb:g} GB, dtype "
                   f"{settings.dtype}, {'eager' if settings.enforce_eager else 'torch.compile'}, threads "
                   f"{settings.threads or 'vLLM default'}")
    print(f"model {model_dir.name}  {args.sessions} session(s) x {args.turns} turns  first message "
          f"{statistics.median(n for _, n in firsts):.0f} tokens  max_tokens {args.max_tokens}  {os.cpu_count()} CPUs\n"
          f"{engine_line}", flush=True)

    results: dict[str, list[list[Turn]]] = {}
    ready: dict[str, float] = {}
    failures: dict[str, str] = {}
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from llmship.serving.bento import chat_service_env

        registry, model_uri = register_champion(model_dir, source="session_bench")
        for label, config in configs.items():
            scope = Cleanup()
            cleanup.push(f"server {label}", scope.run)
            try:
                print(f"prefix caching {label}:", flush=True)
                env = chat_service_env(config, registry.tracking_uri)
                info, sampler, ready[label] = start_llmship(model_uri, env, args, scope)
                sampler.stop()
                import httpx

                model = httpx.get(f"{info.url}/v1/models", timeout=10).json()["data"][0]["id"]
                results[label] = asyncio.run(run_sessions(info.url, model, [m for m, _ in firsts], args.turns,
                                                          args.max_tokens))
            except Exception as err:  # noqa: BLE001 - report it, go on with the peer
                failures[label] = f"{type(err).__name__}: {err}"
                print(f"prefix caching {label} failed: {failures[label]}", file=sys.stderr, flush=True)
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

    rows = {label: per_turn(sessions, args.turns) for label, sessions in results.items()}
    sums = {label: summary(r) for label, r in rows.items()}
    errors = [f"prefix caching {label}, turn {t.turn}: {t.error}" for label, sessions in results.items()
              for s in sessions for t in s if t.error]
    print(f"\nmodel {model_dir.name}; {args.sessions} session(s) x {args.turns} turns, medians per turn; first "
          f"message {statistics.median(n for _, n in firsts):.0f} tokens (asked {args.history_tokens}); max_tokens "
          f"{args.max_tokens}\n{engine_line}")
    if "on" in rows:
        print(table(rows["on"], rows.get("off")))
    print(f"\nturn {args.turns} / turn 1 TTFT (target with caching: <= 0.5)")
    for label, s in sums.items():
        ok = "" if s["ttft_last_over_first"] is None or label == "off" else (
            "ok" if s["ttft_last_over_first"] <= 0.5 else "MISSED")
        print(f"  prefix caching {label:<3}: {_f(s['ttft_last_over_first'], '{:.2f}')}  {ok}   prefix-cache hit rate "
              f"after turn 1: {_f(s['hit_rate_after_turn_1'], '{:.0%}')} "
              f"({s['hit_tokens']:.0f} of {s['queried_tokens']:.0f} prompt tokens over the run)")
    for e in errors:
        print(f"  ERROR {e}")
    for label, msg in failures.items():
        print(f"  prefix caching {label}: FAILED — {msg}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({
        "meta": {"model_dir": str(model_dir), "turns": args.turns, "sessions": args.sessions,
                 "history_tokens": [n for _, n in firsts], "max_tokens": args.max_tokens,
                 "engine": settings.model_dump(exclude={"model_uri", "enable_prefix_caching"}),
                 "ready_s": ready, "cpu_count": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "per_turn": rows, "summary": sums, "turns": {label: [[t.__dict__ for t in s] for s in sessions]
                                                     for label, sessions in results.items()},
        "errors": errors, "failures": failures}, indent=2))
    print(f"\nresults: {out_path}")
    return 1 if failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
