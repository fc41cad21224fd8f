"""check_engine: one vLLM engine, configured as the chat service will run it: engine parity against the fp32
reference, the chat smoke prompts, and the benchmark (interleaved repetitions, medians), plus a PNG chart. On a
re-deploy the running service will swap in place, the engine is started in that service and kept for the swap
(``llmship.serving.staging``)."""

import time
from typing import Annotated

from zenml import step

from llmship import paths
from llmship.config import BenchConfig, EvalConfig, ParityConfig, RegistryConfig, ServeConfig
from llmship.models import BuiltModel
from llmship.serving.staging import service_runner
from llmship.validate.benchmark import BenchmarkReport, chart
from llmship.validate.engine_check import EngineParityReport, run_engine_check
from llmship.validate.quality import SmokeReport
from steps._stack import tracking_uri


@step
def check_engine(built: BuiltModel, parity: ParityConfig, evaluate: EvalConfig, benchmark: BenchConfig,
                 serve: ServeConfig, registry: RegistryConfig) -> tuple[
        Annotated[EngineParityReport, "engine_parity_report"], Annotated[SmokeReport, "smoke_report"],
        Annotated[BenchmarkReport, "benchmark_report"], Annotated[str, "benchmark_chart"]]:
    report = run_engine_check(built.path, serve.engine_settings(f"path:{built.path}"),
                              parity_prompts_file=parity.prompts_file, greedy_tokens=parity.greedy_tokens,
                              smoke_file=evaluate.smoke_file, smoke_max_tokens=evaluate.smoke_max_tokens,
                              batches=benchmark.batches, max_tokens=benchmark.max_tokens, repeats=benchmark.repeats,
                              # a re-deploy the running service will swap: the check runs there, on the engine it serves next
                              runner=service_runner(registry.name, serve, tracking_uri()) if serve.enabled else None)
    print(f"vLLM engine started in {report.engine_start_s:.1f} s"
          + (f", staged in the service at {report.where} (the swap serves it)" if report.where != "subprocess" else ""))
    print(report.bench.table())
    b1 = next((r for r in report.bench.rows if r.batch == 1), report.bench.rows[0])
    print(f"result: vLLM vs reference top-1 {report.parity.top1_agreement:.3f}, smoke {report.smoke.pass_rate:.0%}, "
          f"{b1.decode_tok_s:.1f} tok/s at batch {b1.batch} ({b1.device}, {report.parity.engine_dtype.removeprefix('torch.')})")
    png = chart(report.bench, paths.sub("reports") / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}.png",
                title=built.source)
    return report.parity, report.smoke, report.bench, str(png)  # a tuple literal: ZenML reads four artifacts
