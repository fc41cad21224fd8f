"""The gates that apply to a hosted model, measured through the client a user of the upstream would use.

- **smoke**: the chat smoke prompts (``evaluate.smoke_file``), greedy; each must return text.
- **perplexity** on the held-out text (in pieces of about ``evaluate.window`` tokens, each scored on its own), where the upstream returns prompt log-probabilities (``echo`` +
  ``logprobs`` on ``/v1/completions``); otherwise recorded as not available, with the upstream's reason, and
  the perplexity gates are skipped rather than passed.
- **benchmark**: TTFT, inter-chunk latency, decode and output tok/s at each of ``benchmark.batches`` concurrent
  streams, ``repeats`` interleaved rounds, medians kept (as ``llmship.validate.engine_check`` does for vLLM).
  Token counts come from the upstream's usage. Build, ONNX export and both parity gates do not apply: there are
  no weights here.
"""

from __future__ import annotations

import asyncio
import math
import re
import statistics
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llmship.config import BenchConfig, EvalConfig
from llmship.errors import EngineUnavailable, LlmshipError
from llmship.hosted.calls import StreamedAnswer, openai_client, prompt_logprobs, stream_chat
from llmship.hosted.spec import HostedModel
from llmship.validate.benchmark import PROMPT, BenchmarkReport, BenchRow
from llmship.validate.quality import PerplexityReport, SmokeReport, SmokeResult, load_prompts

CHARS_PER_TOKEN = 3  # held-out text per completion call: evaluate.window tokens at about this many characters each


class HostedCheckReport(BaseModel):
    smoke: SmokeReport
    perplexity: PerplexityReport | None
    perplexity_unavailable: str | None = None  # why, when the upstream gives no prompt log-probabilities
    bench: BenchmarkReport

    def summary(self) -> str:
        ppl = (f"perplexity {self.perplexity.perplexity:.2f}" if self.perplexity
               else "perplexity not available")
        b1 = next((r for r in self.bench.rows if r.batch == 1), None)
        speed = f", {b1.decode_tok_s} tok/s at batch 1, TTFT {b1.ttft_s * 1000:.0f} ms" if b1 else ""
        return f"smoke {self.smoke.pass_rate:.0%}, {ppl}{speed}"


def run_hosted_check(spec: HostedModel, evaluate: EvalConfig, benchmark: BenchConfig) -> HostedCheckReport:
    return asyncio.run(_check(spec, evaluate, benchmark))


async def _check(spec: HostedModel, evaluate: EvalConfig, benchmark: BenchConfig) -> HostedCheckReport:
    client = None if spec.via_litellm else openai_client(spec)
    try:
        smoke = await _smoke(spec, evaluate, client)
        ppl, why = await _perplexity(spec, evaluate, client)
        bench = await _bench(spec, benchmark, client)
    except LlmshipError:
        raise
    except Exception as err:  # noqa: BLE001 - the upstream refused or failed: one line naming it, never the key
        raise EngineUnavailable(f"{spec.describe()} failed during validation: {_one_line(err)}") from None
    finally:
        if client is not None:
            await client.close()
    return HostedCheckReport(smoke=smoke, perplexity=ppl, perplexity_unavailable=why, bench=bench)


def _one_line(err: Exception) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"


async def _smoke(spec: HostedModel, evaluate: EvalConfig, client: Any) -> SmokeReport:
    prompts = load_prompts(evaluate.smoke_file)
    answers = await asyncio.gather(*[stream_chat(spec, p["messages"], evaluate.smoke_max_tokens, client=client)
                                     for p in prompts])
    results = [SmokeResult(id=p["id"], text=a.text, completion_tokens=a.completion_tokens,
                           finish_reason=a.finish_reason or "length", ok=bool(a.text.strip()))
               for p, a in zip(prompts, answers)]
    return SmokeReport(results=results, pass_rate=sum(r.ok for r in results) / max(len(results), 1))


def heldout_chunks(text: str, size: int) -> list[str]:
    """The held-out text in pieces of about ``size`` characters, cut at paragraph or sentence ends."""
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?])\s+|\n{2,}", text):
        if current and len(current) + len(sentence) + 1 > size:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip() if current else sentence.strip()
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


async def _perplexity(spec: HostedModel, evaluate: EvalConfig,
                      client: Any) -> tuple[PerplexityReport | None, str | None]:
    started = time.perf_counter()
    text = Path(evaluate.heldout_file).read_text()
    values: list[float] = []
    try:
        for piece in heldout_chunks(text, evaluate.window * CHARS_PER_TOKEN):
            values += await prompt_logprobs(spec, piece, client=client)
            if evaluate.max_eval_tokens and len(values) >= evaluate.max_eval_tokens:
                values = values[:evaluate.max_eval_tokens]
                break
    except NotImplementedError as why:
        return None, str(why)
    except Exception as err:  # noqa: BLE001 - an upstream without echo/logprobs answers 400 or 404: not a failed release
        return None, f"the upstream returns no prompt log-probabilities ({_one_line(err)})"
    if not values:
        return None, "the held-out text is empty"
    ppl = math.exp(-sum(values) / len(values))
    return PerplexityReport(tokens=len(values), perplexity=ppl, window=0, stride=0,
                            seconds=round(time.perf_counter() - started, 2)), None


async def _bench(spec: HostedModel, benchmark: BenchConfig, client: Any) -> BenchmarkReport:
    """Each batch size ``repeats`` times, rounds interleaved (b1, b4, b16, b1, ...); medians per batch size."""

    async def one(tag: str) -> StreamedAnswer:
        # a distinct first line per request: a prefix cache upstream must not turn the prefill into a hit
        messages = [{"role": "user", "content": f"({tag}) {PROMPT}"}]
        return await stream_chat(spec, messages, benchmark.max_tokens, temperature=0.0, client=client)

    await one("warm-up")
    samples: dict[int, list[dict[str, float]]] = {b: [] for b in benchmark.batches}
    for rep in range(benchmark.repeats):
        for batch in benchmark.batches:
            started = time.perf_counter()
            answers = await asyncio.gather(*[one(f"{rep}-{batch}-{i}") for i in range(batch)])
            elapsed = time.perf_counter() - started
            generated = sum(a.completion_tokens for a in answers)
            first_done = max(a.ttft_s for a in answers)
            gaps = [g for a in answers for g in a.gaps]
            samples[batch].append({
                "ttft_s": statistics.median(a.ttft_s for a in answers),
                "itl_s": statistics.median(gaps) if gaps else 0.0,
                "output_tok_s": generated / elapsed,
                "decode_tok_s": max(generated - batch, 0) / max(elapsed - first_done, 1e-9)})
    rows = [BenchRow(backend="hosted", device="remote", batch=b, repeats=len(s),
                     decode_tok_s=round(statistics.median(x["decode_tok_s"] for x in s), 2),
                     output_tok_s=round(statistics.median(x["output_tok_s"] for x in s), 2),
                     ttft_s=round(statistics.median(x["ttft_s"] for x in s), 4),
                     itl_s=round(statistics.median(x["itl_s"] for x in s), 4), peak_rss_mb=0.0)
            for b, s in samples.items()]
    return BenchmarkReport(rows=rows, gpu="not applicable (hosted)", max_tokens=benchmark.max_tokens, threads=0)
