"""The gates measure what serves: one vLLM engine, started as the chat service starts it, checked three ways.

- ``EngineParityReport``: does vLLM compute what the validated model computes? The reference is the transformers
  model in fp32 (``llmship.validate.reference``). Two measures, both gated:
  *top-1 agreement* is teacher-forced: the reference's continuation goes back into vLLM as a prompt, and vLLM's
  own top-1 token at every position of it (``prompt_logprobs``) is compared with the reference's.
  *Greedy closeness* follows vLLM's own model tests (``check_logprobs_close``): the two greedy continuations are
  compared token by token; where they first differ, each side's token must be among the other side's top
  ``TOP_K``, and comparison stops there (after one near-tie the sequences are different texts). A bf16 engine
  and an fp32 reference legitimately part at near-ties; a wrong kernel, dtype or quantization parts where one
  side's choice is not even a candidate for the other. The common greedy prefix is reported beside it, not
  gated: it measures how early the first near-tie falls, which is luck of the prompt.
- ``SmokeReport``: the chat smoke prompts through the chat template, on vLLM.
- ``BenchmarkReport``: TTFT, inter-token latency, decode and output tok/s at each batch size, several
  interleaved repetitions with the median, and the peak RSS of the engine's process tree.

The engine runs in a subprocess (``python -m llmship.validate.engine_check``): its memory, threads and worker
processes are its own, and a crash is a failed check with one line, not a dead pipeline step. Or, on a re-deploy
the running chat service would swap in place, in that service (``runner``; ``llmship.serving.staging``): the
service starts the candidate engine beside the one serving, the check runs on it there, and the deploy's swap then
serves that same engine instead of starting another (``check_engine_on`` is the check both places run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel

from llmship.engine.settings import EngineSettings
from llmship.errors import LlmshipError
from llmship.validate.benchmark import PROMPT, BenchmarkReport, BenchRow, gpu_status
from llmship.validate.quality import SmokeReport, SmokeResult, load_prompts

if TYPE_CHECKING:
    from llmship.engine.vllm import ServedEngine

TOP_K = 5  # the candidates a near-tie may pick from (vLLM's model tests compare with 5 logprobs)


class Divergence(BaseModel):
    """Where one prompt's greedy continuations first differ, and whether that was a near-tie."""

    prompt: int
    position: int
    engine_token: int
    reference_token: int
    close: bool  # each side's token is among the other side's top ``TOP_K`` there


def first_divergence(prompt: int, engine: list[int], engine_top: list[set[int]], reference: list[int],
                     reference_top: list[set[int]]) -> Divergence | None:
    """``None`` when the continuations agree; else the first position where they differ (vLLM's
    ``check_logprobs_close``: a divergence is close when each token is a top candidate of the other side)."""
    for i, (mine, ref) in enumerate(zip(engine, reference)):
        if mine != ref:
            close = i < len(engine_top) and i < len(reference_top) and ref in engine_top[i] and mine in reference_top[i]
            return Divergence(prompt=prompt, position=i, engine_token=mine, reference_token=ref, close=close)
    return None


class EngineParityReport(BaseModel):
    prompts: int
    greedy_tokens: int
    positions: int
    top1_agreement: float
    greedy_close: float  # prompts whose continuations agree or first part at a near-tie, as a fraction
    greedy_agreement: float  # mean common prefix over greedy_tokens (reported, not gated)
    greedy_exact_prompts: int
    top_k: int = TOP_K
    divergences: list[Divergence] = []
    engine_dtype: str
    seconds: float

    def metrics(self) -> dict[str, float]:
        return {"engine_parity_top1_agreement": self.top1_agreement,
                "engine_parity_greedy_close": self.greedy_close,
                "engine_parity_greedy_agreement": self.greedy_agreement}


class EngineCheckSpec(BaseModel):
    """What the subprocess is asked to do (written to a JSON file, so no argument is too long)."""

    hf_dir: str
    settings: EngineSettings
    parity_prompts: list[list[int]]
    reference_greedy: list[list[int]]
    reference_top: list[list[list[int]]]  # per prompt, per position: the reference's top TOP_K token ids
    smoke_prompts: list[dict[str, Any]]
    smoke_max_tokens: int = 24
    batches: list[int]
    max_tokens: int = 32
    repeats: int = 3


class EngineCheckReport(BaseModel):
    parity: EngineParityReport
    smoke: SmokeReport
    bench: BenchmarkReport
    engine_start_s: float
    where: str = "subprocess"  # or the URL of the chat service whose staged engine was checked (``runner``)


class ReferenceGreedy(BaseModel):
    """The prompts' token ids, the fp32 reference's greedy continuations (EOS ignored: always N tokens) and its
    top ``TOP_K`` token ids at every generated position."""

    prompts: list[list[int]]
    greedy: list[list[int]]
    top: list[list[list[int]]]
    reused: bool = False  # read back from an earlier run (``reference_for``)


def reference_greedy(hf_dir: str | Path, prompts: list[str], greedy_tokens: int) -> ReferenceGreedy:
    from llmship.validate.reference import SamplingParams
    from llmship.validate.reference.loader import load_engine

    reference = load_engine(hf_dir, "pytorch", dtype="float32")
    encoded = [reference.encode(p) for p in prompts]
    params = SamplingParams(max_tokens=greedy_tokens, temperature=0.0, ignore_eos=True, top_logprobs=TOP_K)
    outs = reference.generate(encoded, params)
    top = [[[token for token, _ in step.top] for step in o.logprobs] for o in outs]
    if any(len(t) != len(o.token_ids) for t, o in zip(top, outs)):
        raise LlmshipError("the reference returned fewer logprobs than tokens")
    return ReferenceGreedy(prompts=encoded, greedy=[o.token_ids for o in outs], top=top)


def reference_for(hf_dir: str | Path, prompts_file: str | Path, greedy_tokens: int) -> ReferenceGreedy:
    """``reference_greedy`` on the prompts of ``prompts_file``, kept beside the model and read back while nothing it
    depends on changes (``llmship.validate.reuse``): fp32 and greedy, it is deterministic, and it is ~11 s of every
    re-deploy's engine check on gemma-3-270m here. The engine's side of the check always runs."""
    from llmship.validate import reference
    from llmship.validate.reuse import content_key, reuse_or_measure

    key = content_key([Path(hf_dir)], [Path(prompts_file)],
                      code=[Path(__file__), *reference.sources()], extra=f"greedy={greedy_tokens}")
    return reuse_or_measure(
        Path(hf_dir).parent / f"reused-reference-{key}.json", ReferenceGreedy,
        lambda: reference_greedy(hf_dir, [str(p) for p in load_prompts(prompts_file)], greedy_tokens))


Runner = Callable[[EngineCheckSpec], "EngineCheckReport | None"]


def run_engine_check(hf_dir: str | Path, settings: EngineSettings, *, parity_prompts_file: str | Path,
                     greedy_tokens: int, smoke_file: str | Path, smoke_max_tokens: int, batches: list[int],
                     max_tokens: int = 32, repeats: int = 3, timeout_s: float = 1800,
                     runner: Runner | None = None) -> EngineCheckReport:
    """Compute the reference in this process (or read it back: ``reference_for``), then check one vLLM engine:
    with ``runner`` (a running service that takes the check, ``llmship.serving.staging``) when it answers with a
    report, else in a subprocess."""
    ref = reference_for(hf_dir, parity_prompts_file, greedy_tokens)
    spec = EngineCheckSpec(hf_dir=str(hf_dir), settings=settings, parity_prompts=ref.prompts,
                           reference_greedy=ref.greedy, reference_top=ref.top,
                           smoke_prompts=load_prompts(smoke_file), smoke_max_tokens=smoke_max_tokens,
                           batches=batches, max_tokens=max_tokens, repeats=repeats)
    if runner is not None:
        report = runner(spec)
        if report is not None:
            return report
    return _in_subprocess(spec, timeout_s)


def _in_subprocess(spec: EngineCheckSpec, timeout_s: float) -> EngineCheckReport:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmship-engine-check-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "report.json"
        spec_path.write_text(spec.model_dump_json())
        cmd = [sys.executable, "-m", "llmship.validate.engine_check", str(spec_path), str(out_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not out_path.exists():
            raise LlmshipError(f"the vLLM engine check failed: {_last_line(proc.stderr)}")
        return EngineCheckReport.model_validate_json(out_path.read_text())


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[-400:]
    return lines[-1][-400:] if lines else "no output"


# ---------------------------------------------------------------- the check, in the subprocess or a service
async def _check(spec: EngineCheckSpec) -> EngineCheckReport:
    from llmship.engine.vllm import start_engine

    engine = await start_engine(spec.settings, Path(spec.hf_dir), model_id="check", version="check")
    try:
        return await check_engine_on(engine, spec)
    finally:
        await engine.stop()


async def check_engine_on(engine: ServedEngine, spec: EngineCheckSpec, *, engine_procs: list[Any] | None = None,
                          where: str = "subprocess") -> EngineCheckReport:
    """Engine parity, the smoke prompts and the benchmark on a started engine. ``engine_procs``: the engine's own
    processes (``psutil`` handles), when this process runs other engines too (a service's staged check): the peak
    RSS is then this process and those, not every child of it."""
    client = engine.client
    parity = await _parity(client, spec)
    smoke = await _smoke(client, spec)
    bench = await _bench(client, spec, engine_procs)
    return EngineCheckReport(parity=parity, smoke=smoke, bench=bench, engine_start_s=round(engine.started_s, 1),
                             where=where)


async def _generate(client: Any, prompt_ids: list[int], params: Any) -> Any:
    out = None
    async for out in client.generate({"prompt_token_ids": prompt_ids}, params, request_id=uuid.uuid4().hex):
        pass
    return out


async def _parity(client: Any, spec: EngineCheckSpec) -> EngineParityReport:
    from vllm import SamplingParams

    started = time.perf_counter()
    n = len(spec.reference_greedy[0]) if spec.reference_greedy else 0
    greedy = SamplingParams(max_tokens=max(n, 1), temperature=0.0, ignore_eos=True, logprobs=TOP_K)
    forced = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
    prefix_total, exact, agree, positions = 0, 0, 0, 0
    divergences: list[Divergence] = []
    for p, (ids, ref, ref_top) in enumerate(zip(spec.parity_prompts, spec.reference_greedy, spec.reference_top)):
        out = (await _generate(client, ids, greedy)).outputs[0]
        mine = list(out.token_ids)
        # vLLM's entry holds the top TOP_K and the sampled token; rank says which are the top ones
        mine_top = [{t for t, lp in entry.items() if lp.rank is not None and lp.rank <= TOP_K}
                    for entry in (out.logprobs or [])]
        diverged = first_divergence(p, mine, mine_top, ref, [set(t) for t in ref_top])
        common = diverged.position if diverged else min(len(mine), len(ref))
        prefix_total += common
        exact += int(diverged is None and len(mine) == len(ref))
        if diverged:
            divergences.append(diverged)
        teacher = await _generate(client, ids + list(ref), forced)
        for k, token in enumerate(ref):
            entry = teacher.prompt_logprobs[len(ids) + k] if teacher.prompt_logprobs else None
            if not entry:
                continue
            top = min(entry.items(), key=lambda item: item[1].rank)[0]
            agree += int(top == token)
            positions += 1
    prompts = max(len(spec.parity_prompts), 1)
    close = len(spec.parity_prompts) - sum(not d.close for d in divergences)
    return EngineParityReport(prompts=len(spec.parity_prompts), greedy_tokens=n, positions=positions,
                              top1_agreement=agree / max(positions, 1), greedy_close=close / prompts,
                              greedy_agreement=prefix_total / max(prompts * max(n, 1), 1),
                              greedy_exact_prompts=exact, divergences=divergences,
                              engine_dtype=str(client.model_config.dtype),
                              seconds=round(time.perf_counter() - started, 2))


def _chat_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False).input_ids)


async def _smoke(client: Any, spec: EngineCheckSpec) -> SmokeReport:
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    # in a thread: in a service (a staged check) the event loop keeps serving meanwhile
    tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, spec.hf_dir)
    params = SamplingParams(max_tokens=spec.smoke_max_tokens, temperature=0.0)
    outs = await asyncio.gather(*[_generate(client, _chat_ids(tokenizer, p["messages"]), params)
                                  for p in spec.smoke_prompts])
    results = [SmokeResult(id=p["id"], text=o.outputs[0].text, completion_tokens=len(o.outputs[0].token_ids),
                           finish_reason=o.outputs[0].finish_reason or "length", ok=bool(o.outputs[0].text.strip()))
               for p, o in zip(spec.smoke_prompts, outs)]
    return SmokeReport(results=results, pass_rate=sum(r.ok for r in results) / max(len(results), 1))


class _TreeRss:
    """Peak RSS of this process and its children (vLLM's engine core and workers), sampled every 100 ms; with
    ``procs`` (``psutil`` handles), of this process and those only."""

    def __init__(self, procs: list[Any] | None = None) -> None:
        self.procs = procs
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *(me.children(recursive=True) if self.procs is None else self.procs)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(0.1)


async def _bench(client: Any, spec: EngineCheckSpec, engine_procs: list[Any] | None = None) -> BenchmarkReport:
    """Each batch size ``repeats`` times, rounds interleaved (b1, b4, b16, b1, ...); medians per batch size."""
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    # in a thread: in a service (a staged check) the event loop keeps serving meanwhile
    tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, spec.hf_dir)
    params = SamplingParams(max_tokens=spec.max_tokens, temperature=0.0, ignore_eos=True)

    async def one(tag: str) -> tuple[float, float, float, int]:
        # a distinct first line per request: the prefix cache must not turn the benchmark's prefill into a hit
        ids = _chat_ids(tokenizer, [{"role": "user", "content": f"({tag}) {PROMPT}"}])
        submitted = time.perf_counter()
        first = last = None
        gaps: list[float] = []
        count = 0
        async for out in client.generate({"prompt_token_ids": ids}, params, request_id=uuid.uuid4().hex):
            now = time.perf_counter()
            if first is None:
                first = now
            elif last is not None:
                gaps.append(now - last)
            last = now
            count = len(out.outputs[0].token_ids)
        assert first is not None and last is not None
        return first - submitted, statistics.mean(gaps) if gaps else 0.0, last - submitted, count

    await one("warm-up")
    samples: dict[int, list[dict[str, float]]] = {b: [] for b in spec.batches}
    with _TreeRss(engine_procs) as rss:
        for rep in range(spec.repeats):
            for batch in spec.batches:
                started = time.perf_counter()
                results = await asyncio.gather(*[one(f"{rep}-{batch}-{i}") for i in range(batch)])
                elapsed = time.perf_counter() - started
                generated = sum(r[3] for r in results)
                ttft = statistics.median(r[0] for r in results)
                samples[batch].append({
                    "ttft_s": ttft, "itl_s": statistics.median(r[1] for r in results),
                    "output_tok_s": generated / elapsed,
                    "decode_tok_s": (generated - batch) / max(elapsed - max(r[0] for r in results), 1e-9)})
    device = spec.settings.device
    rows = [BenchRow(backend="vllm", device=device, batch=b, repeats=len(s),
                     decode_tok_s=round(statistics.median(x["decode_tok_s"] for x in s), 2),
                     output_tok_s=round(statistics.median(x["output_tok_s"] for x in s), 2),
                     ttft_s=round(statistics.median(x["ttft_s"] for x in s), 4),
                     itl_s=round(statistics.median(x["itl_s"] for x in s), 4), peak_rss_mb=round(rss.peak_mb, 1))
            for b, s in samples.items()]
    return BenchmarkReport(rows=rows, gpu=gpu_status(), max_tokens=spec.max_tokens, threads=spec.settings.threads)


def main() -> None:
    parser = argparse.ArgumentParser(description="check one vLLM engine (used by run_engine_check)")
    parser.add_argument("spec")
    parser.add_argument("out")
    args = parser.parse_args()
    spec = EngineCheckSpec.model_validate_json(Path(args.spec).read_text())
    report = asyncio.run(_check(spec))
    Path(args.out).write_text(report.model_dump_json())


if __name__ == "__main__":
    main()
