"""What serving a hosted release through llmship costs: the same model answered directly, and through a hosted
release whose upstream is that same model, in one run with the same client.

Needs a deploy (``make deploy``) and a hosted release of it served by the same service
(``make deploy CONFIG=configs/deploy_hosted.yaml``: ``openai:http://127.0.0.1:3000/v1#gemma3-270m`` registered as
``gemma3-270m-hosted``). Both paths end in the same vLLM engine, so the difference is llmship's hosted path: the
router, a second pass through the gateway, an HTTP hop over loopback and the SSE relay — on the same two cores
as the engine (a worst case: a real upstream decodes elsewhere).

Streams ``--max-tokens`` tokens with the official ``openai`` SDK at each concurrency, rounds interleaved (direct,
hosted, direct, ...), ``--repeats`` rounds, medians; prints output tok/s, TTFT p50 and the hosted/direct ratios.

``python benchmarks/hosted_bench.py [--url http://127.0.0.1:3000] [--model gemma3-270m] [--hosted gemma3-270m-hosted]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import httpx

from llmship.hosted import HostedModel
from llmship.hosted.calls import openai_client, stream_chat
from llmship.validate.benchmark import PROMPT


async def round_(spec: HostedModel, client, concurrency: int, max_tokens: int, tag: str) -> dict[str, float]:
    started = time.perf_counter()
    answers = await asyncio.gather(*[
        stream_chat(spec, [{"role": "user", "content": f"({tag}-{i}) {PROMPT}"}], max_tokens, client=client)
        for i in range(concurrency)])
    elapsed = time.perf_counter() - started
    return {"output_tok_s": sum(a.completion_tokens for a in answers) / elapsed,
            "ttft_s": statistics.median(a.ttft_s for a in answers)}


async def main(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    async with httpx.AsyncClient(timeout=10) as http:
        listed = {m["id"] for m in (await http.get(f"{url}/v1/models")).json()["data"]}
    for name in (args.model, args.hosted):
        if name not in listed:
            print(f"{url} does not serve {name!r} (it serves {sorted(listed)}); run make deploy, then "
                  "make deploy CONFIG=configs/deploy_hosted.yaml", file=sys.stderr)
            return 1
    paths = {label: HostedModel(source=f"openai:{url}/v1#{name}", provider="openai", base_url=f"{url}/v1",
                                model=name, timeout_s=300)
             for label, name in (("direct", args.model), ("hosted", args.hosted))}
    clients = {label: openai_client(spec) for label, spec in paths.items()}
    for label, spec in paths.items():  # warm-up
        await round_(spec, clients[label], 2, 4, f"warm-{label}")
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    for rep in range(args.repeats):
        for concurrency in args.concurrency:
            for label, spec in paths.items():
                samples.setdefault((label, concurrency), []).append(
                    await round_(spec, clients[label], concurrency, args.max_tokens, f"{rep}-{concurrency}-{label}"))
    print(f"{args.max_tokens} tokens per stream, {args.repeats} interleaved rounds, medians; direct = {args.model}, "
          f"hosted = {args.hosted} (upstream: the same service)")
    print(f"{'streams':>8}{'direct tok/s':>14}{'hosted tok/s':>14}{'ratio':>8}{'direct TTFT ms':>16}"
          f"{'hosted TTFT ms':>16}{'+ms':>8}")
    for concurrency in args.concurrency:
        d = {k: statistics.median(s[k] for s in samples[("direct", concurrency)]) for k in ("output_tok_s", "ttft_s")}
        h = {k: statistics.median(s[k] for s in samples[("hosted", concurrency)]) for k in ("output_tok_s", "ttft_s")}
        print(f"{concurrency:>8}{d['output_tok_s']:>14.1f}{h['output_tok_s']:>14.1f}"
              f"{h['output_tok_s'] / d['output_tok_s']:>8.2f}{d['ttft_s'] * 1000:>16.0f}{h['ttft_s'] * 1000:>16.0f}"
              f"{(h['ttft_s'] - d['ttft_s']) * 1000:>8.0f}")
    for client in clients.values():
        await client.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--hosted", default="gemma3-270m-hosted")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args())))
