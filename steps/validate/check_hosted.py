"""check_hosted: the gates that apply to a hosted model, through the client its users have: smoke prompts,
perplexity where the upstream returns prompt log-probabilities, TTFT and tok/s at each batch size; a PNG chart."""

import time
from typing import Annotated

from zenml import step

from llmship import paths
from llmship.config import BenchConfig, EvalConfig
from llmship.hosted import HostedModel
from llmship.hosted.check import HostedCheckReport, run_hosted_check
from llmship.validate.benchmark import chart
from steps._secrets import load_secrets


@step
def check_hosted(hosted: HostedModel, evaluate: EvalConfig, benchmark: BenchConfig) -> tuple[
        Annotated[HostedCheckReport, "hosted_check"], Annotated[str, "benchmark_chart"]]:
    load_secrets(extra=(hosted.api_key_env,) if hosted.api_key_env else ())
    report = run_hosted_check(hosted, evaluate, benchmark)
    print(report.bench.table())
    if report.perplexity_unavailable:
        print(f"perplexity not available: {report.perplexity_unavailable}")
    png = chart(report.bench, paths.sub("reports") / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}.png",
                title=hosted.source)
    print(f"result: {report.summary()}")
    return report, str(png)
