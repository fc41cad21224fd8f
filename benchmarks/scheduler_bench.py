"""Continuous batching vs static batching on one engine, in process (CUDA when present, else CPU).

Measures output tok/s and TTFT p50/p99 of ``llmship.engine.scheduler.Scheduler``
against the peer every batch server starts from: static batches of the same
requests, run one after another (``Engine.generate``). Requests have mixed
lengths, so static batching pays for its longest member; the scheduler refills
freed slots at once. It also checks that greedy tokens from the scheduler equal
those of the request run alone.

The model is either a real folder (``--hf DIR``) or, where weights cannot travel
(a GPU machine without the model), a randomly initialised model of the folder's
exact shape (``--random-weights``): speed depends on shapes, not on weights.

    python benchmarks/scheduler_bench.py --hf .llmship/models/<slug>/hf [--device cuda] [--random-weights]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import torch


def _engine(hf: Path, device: str, dtype: str, random_weights: bool):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from llmship.engine.base import Engine
    from llmship.engine.loader import context_length, eos_ids
    from llmship.engine.torch_backend import TorchBackend

    tokenizer = AutoTokenizer.from_pretrained(str(hf))
    if random_weights:
        config = AutoConfig.from_pretrained(str(hf))
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).to(device)
        backend = TorchBackend(model, name=f"pytorch-{dtype}-{device}-random")
    else:
        backend = TorchBackend.from_folder(hf, dtype=dtype, device=device)
    return Engine(backend, tokenizer, eos_token_ids=eos_ids(hf, tokenizer), context_length=context_length(hf, 2048),
                  model_id=hf.parent.name)


def _requests(engine, count: int, max_tokens: int):
    from llmship.engine import SamplingParams

    topics = ["rivers", "bread", "engines", "winter", "music", "cities", "bees", "glass"]
    prompts = [engine.apply_chat_template([{"role": "user", "content": f"Write about {topics[i % 8]} ({i})."}])
               for i in range(count)]
    lengths = [max(4, max_tokens // (1 + i % 4)) for i in range(count)]  # mixed: full, 1/2, 1/3, 1/4
    return prompts, [SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True) for n in lengths]


def _one_by_one(engine, prompts, params) -> list[list[int]]:
    """Each request generated alone: the reference the scheduler's batched tokens must equal."""
    return [engine.generate([prompt], p)[0].token_ids for prompt, p in zip(prompts, params, strict=True)]


def _in_thread(fn, *args):
    """Run ``fn`` on a short-lived thread, as the scheduler runs the model on its own thread.

    On CPU each thread that calls into PyTorch gets its own OpenMP team, whose
    workers spin for a while after every parallel region; a baseline on the
    main thread would leave a spinning team behind that steals the cores the
    scheduler's thread needs (measured: 20 -> 14 tok/s on 2 cores).
    """
    result = []
    worker = threading.Thread(target=lambda: result.append(fn(*args)))
    worker.start()
    worker.join()
    return result[0]


def run_static(engine, prompts, params, batch: int) -> dict:
    started = time.perf_counter()
    ttfts, tokens = [], 0
    for i in range(0, len(prompts), batch):
        wave_start = time.perf_counter()
        outs = engine.generate(prompts[i:i + batch], params[i:i + batch])
        ttfts += [wave_start - started + o.ttft_s for o in outs]  # arrival is t=0 for every request
        tokens += sum(o.completion_tokens for o in outs)
    return _summary(tokens, time.perf_counter() - started, ttfts)


def run_scheduler(engine, prompts, params, batch: int) -> tuple[dict, list[list[int]]]:
    from llmship.engine.scheduler import Scheduler

    sched = Scheduler(engine, max_batch=batch, max_waiting=len(prompts)).start()
    done = [threading.Event() for _ in prompts]
    first: list[float | None] = [None] * len(prompts)
    got: list[list[int]] = [[] for _ in prompts]
    started = time.perf_counter()

    def sink(i):
        def put(item):
            if isinstance(item, BaseException):
                raise item
            if first[i] is None:
                first[i] = time.perf_counter() - started
            if item.completion_tokens > len(got[i]):
                got[i].append(item.token_id)
            if item.finished:
                done[i].set()
        return put

    for i, (p, q) in enumerate(zip(prompts, params)):
        sched.submit(p, q, sink(i))
    for event in done:
        event.wait()
    elapsed = time.perf_counter() - started
    sched.close()
    return _summary(sum(len(g) for g in got), elapsed, [f or elapsed for f in first]), got


def _summary(tokens: int, seconds: float, ttfts: list[float]) -> dict:
    ttfts = sorted(ttfts)
    return {"tok_s": tokens / seconds, "seconds": seconds, "ttft_p50_ms": 1000 * statistics.median(ttfts),
            "ttft_p99_ms": 1000 * ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--requests", type=int, default=0, help="per batch size (default 4 x batch, >= 8)")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    engine = _engine(args.hf, args.device, args.dtype, args.random_weights)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"engine {engine.name} on {name}; torch {torch.__version__}; up to {args.max_tokens} new tokens, mixed lengths")
    warm_p, warm_q = _requests(engine, 2, 8)
    _in_thread(engine.generate, warm_p, warm_q)
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        count = args.requests or max(8, 4 * batch)
        prompts, params = _requests(engine, count, args.max_tokens)
        static = _in_thread(run_static, engine, prompts, params, batch)
        cont, tokens = run_scheduler(engine, prompts, params, batch)
        alone = _in_thread(_one_by_one, engine, prompts[:4], params[:4])
        same = all(tokens[i] == alone[i] for i in range(len(alone)))
        rows.append((batch, count, static, cont, same))
    print(f"\n{'batch':>5} {'reqs':>5} | {'static tok/s':>12} {'TTFT p50/p99 ms':>17} | {'continuous tok/s':>16} "
          f"{'TTFT p50/p99 ms':>17} | {'speed-up':>8} {'greedy = alone':>14}")
    for batch, count, s, c, same in rows:
        print(f"{batch:>5} {count:>5} | {s['tok_s']:>12.1f} {s['ttft_p50_ms']:>8.0f}/{s['ttft_p99_ms']:<8.0f} | "
              f"{c['tok_s']:>16.1f} {c['ttft_p50_ms']:>8.0f}/{c['ttft_p99_ms']:<8.0f} | "
              f"{c['tok_s'] / s['tok_s']:>7.2f}x {same!s:>14}")


if __name__ == "__main__":
    main()
