"""Decode throughput, time to first token and peak memory, per backend.

Each backend runs in its own subprocess (``python -m llmship.validate.benchmark``)
so that peak RSS is that backend's alone and one runtime's thread pool cannot
slow the other down. CUDA is measured when present (PyTorch CUDA build or
``onnxruntime-gpu``); otherwise the report says ``gpu: unavailable``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from llmship.errors import LlmshipError

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


class BenchRow(BaseModel):
    backend: str
    device: str
    batch: int
    decode_tok_s: float
    output_tok_s: float
    ttft_s: float
    peak_rss_mb: float


class BenchmarkReport(BaseModel):
    rows: list[BenchRow]
    gpu: str
    max_tokens: int
    threads: int

    def metrics(self, served: str) -> dict[str, float]:
        """Flat metrics for the registry; ``served`` names the backend the gates judge."""
        out: dict[str, float] = {}
        for r in self.rows:
            key = f"{r.backend}_{r.device}_b{r.batch}"
            out[f"bench_{key}_decode_tok_s"] = r.decode_tok_s
            out[f"bench_{key}_ttft_s"] = r.ttft_s
            out[f"bench_{key}_peak_rss_mb"] = r.peak_rss_mb
        single = [r for r in self.rows if r.backend == served and r.batch == 1 and r.device == "cpu"]
        if single:
            out["decode_tok_s"] = single[0].decode_tok_s
            out["ttft_s"] = single[0].ttft_s
        return out

    def table(self) -> str:
        head = f"{'backend':<12}{'device':<7}{'batch':>6}{'decode tok/s':>14}{'output tok/s':>14}{'TTFT s':>9}{'peak RSS MB':>13}"
        lines = [head] + [
            f"{r.backend:<12}{r.device:<7}{r.batch:>6}{r.decode_tok_s:>14.1f}{r.output_tok_s:>14.1f}{r.ttft_s:>9.3f}{r.peak_rss_mb:>13.0f}"
            for r in self.rows
        ]
        return "\n".join(lines)


def gpu_status() -> str:
    """A CUDA device name, or 'unavailable'."""
    # A probe that fails in any way (a missing or broken CUDA runtime) means no usable GPU.
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    with contextlib.suppress(Exception):
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return "cuda (onnxruntime-gpu)"
    return "unavailable"


def run_benchmark(hf_dir: str | Path, onnx_dir: str | Path | None, batches: list[int], max_tokens: int = 32,
                  threads: int = 0, torch_dtype: str = "bfloat16", timeout_s: int = 900) -> BenchmarkReport:
    gpu = gpu_status()
    plans = [("pytorch", "cpu")] + ([("onnx", "cpu")] if onnx_dir else [])
    if gpu != "unavailable":
        plans += [("pytorch", "cuda")] + ([("onnx", "cuda")] if onnx_dir else [])
    rows: list[BenchRow] = []
    for backend, device in plans:
        cmd = [sys.executable, "-m", "llmship.validate.benchmark", "--hf", str(hf_dir), "--backend", backend,
               "--device", device, "--batches", ",".join(map(str, batches)), "--max-tokens", str(max_tokens),
               "--threads", str(threads), "--dtype", torch_dtype]
        if onnx_dir:
            cmd += ["--onnx", str(onnx_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            if device == "cuda":  # a GPU that is present but unusable is reported, not fatal
                gpu = f"unusable: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
                continue
            raise LlmshipError(f"benchmark of {backend} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        rows += [BenchRow.model_validate(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]
    return BenchmarkReport(rows=rows, gpu=gpu, max_tokens=max_tokens, threads=threads)


def _measure(args: argparse.Namespace) -> list[dict]:
    from llmship.engine.base import SamplingParams
    from llmship.engine.loader import load_engine

    engine = load_engine(args.hf, args.backend, onnx_dir=args.onnx, threads=args.threads, dtype=args.dtype,
                         device=args.device)
    prompt = engine.apply_chat_template([{"role": "user", "content": PROMPT}])
    engine.generate([prompt], SamplingParams(max_tokens=4, ignore_eos=True))  # warm-up
    rows = []
    for batch in args.batches:
        params = SamplingParams(max_tokens=args.max_tokens, ignore_eos=True)
        started = time.perf_counter()
        outs = engine.generate([prompt] * batch, params)
        elapsed = time.perf_counter() - started
        ttft = outs[0].ttft_s
        generated = sum(o.completion_tokens for o in outs)
        rows.append({
            "backend": "onnxruntime" if args.backend == "onnx" else "pytorch",
            "device": args.device,
            "batch": batch,
            "decode_tok_s": round((generated - batch) / max(elapsed - ttft, 1e-9), 2),
            "output_tok_s": round(generated / elapsed, 2),
            "ttft_s": round(ttft, 4),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        })
    return rows


def _peak_rss_mb() -> float:
    """This process's own high-water mark. ``ru_maxrss`` is not used: on Linux it
    survives ``execve`` and so reports the parent's peak in a fresh subprocess."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chart(report: BenchmarkReport, path: str | Path, title: str = "llmship benchmark") -> Path:
    """Save a PNG: decode tok/s and TTFT by batch size for each backend/device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    series: dict[str, list[BenchRow]] = {}
    for r in report.rows:
        series.setdefault(f"{r.backend} ({r.device})", []).append(r)
    for label, rows in series.items():
        ax1.plot([r.batch for r in rows], [r.decode_tok_s for r in rows], marker="o", label=label)
        ax2.plot([r.batch for r in rows], [r.ttft_s * 1000 for r in rows], marker="o", label=label)
    ax1.set(xlabel="batch size", ylabel="decode tokens/s", title="throughput")
    ax2.set(xlabel="batch size", ylabel="time to first token (ms)", title="latency")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title} — gpu: {report.gpu}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="measure one backend (used by run_benchmark)")
    parser.add_argument("--hf", required=True)
    parser.add_argument("--onnx")
    parser.add_argument("--backend", choices=["pytorch", "onnx"], required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--dtype", default="bfloat16")
    print(json.dumps(_measure(parser.parse_args())))
    sys.stdout.flush()
