"""The benchmark's report: decode and output tok/s, TTFT, inter-token latency and peak RSS per batch size.

It is measured on the engine that serves (vLLM, ``llmship.validate.engine_check``), several interleaved
repetitions per batch size with the median kept; the GPU is named when one is present, else ``gpu: unavailable``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import BaseModel

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


class BenchRow(BaseModel):
    backend: str
    device: str
    batch: int
    decode_tok_s: float
    output_tok_s: float
    ttft_s: float
    peak_rss_mb: float
    itl_s: float | None = None  # median inter-token latency
    repeats: int = 1


class BenchmarkReport(BaseModel):
    rows: list[BenchRow]
    gpu: str
    max_tokens: int
    threads: int

    def metrics(self, served: str = "vllm") -> dict[str, float]:
        """Flat metrics for the registry; ``served`` names the backend the gates judge."""
        out: dict[str, float] = {}
        for r in self.rows:
            key = f"{r.backend}_{r.device}_b{r.batch}"
            out[f"bench_{key}_decode_tok_s"] = r.decode_tok_s
            out[f"bench_{key}_ttft_s"] = r.ttft_s
            out[f"bench_{key}_peak_rss_mb"] = r.peak_rss_mb
            if r.itl_s is not None:
                out[f"bench_{key}_itl_s"] = r.itl_s
        device = "remote" if served == "hosted" else "cpu"  # the gates judge one stream on the CPU, or the upstream
        single = [r for r in self.rows if r.backend == served and r.batch == 1 and r.device == device]
        if single:
            out["decode_tok_s"] = single[0].decode_tok_s
            out["ttft_s"] = single[0].ttft_s
        return out

    def table(self) -> str:
        head = (f"{'backend':<12}{'device':<7}{'batch':>6}{'decode tok/s':>14}{'output tok/s':>14}{'TTFT s':>9}"
                f"{'ITL ms':>8}{'peak RSS MB':>13}{'reps':>6}")
        lines = [head] + [
            f"{r.backend:<12}{r.device:<7}{r.batch:>6}{r.decode_tok_s:>14.1f}{r.output_tok_s:>14.1f}{r.ttft_s:>9.3f}"
            f"{(r.itl_s or 0) * 1000:>8.1f}{r.peak_rss_mb:>13.0f}{r.repeats:>6}"
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
