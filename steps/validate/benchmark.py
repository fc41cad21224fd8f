"""benchmark: decode tok/s, TTFT and peak RSS per backend (CUDA when present), plus a PNG chart."""

import time
from typing import Annotated

from zenml import step

from llmship import paths
from llmship.config import BenchConfig
from llmship.models import BuiltModel
from llmship.validate.benchmark import BenchmarkReport, chart, run_benchmark
from llmship.validate.onnx_export import OnnxExport


@step
def benchmark(built: BuiltModel, config: BenchConfig, onnx: OnnxExport | None = None) -> tuple[
        Annotated[BenchmarkReport, "benchmark_report"], Annotated[str, "benchmark_chart"]]:
    report = run_benchmark(built.path, onnx.path if onnx else None, config.batches, max_tokens=config.max_tokens,
                           threads=config.threads, torch_dtype=config.torch_dtype)
    print(report.table())
    png = chart(report, paths.sub("reports") / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}.png",
                title=built.source)
    return report, str(png)
