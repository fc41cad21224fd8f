"""evaluate: held-out perplexity and chat smoke prompts."""

from typing import Annotated

from zenml import step

from llmship.config import EvalConfig
from llmship.models import BuiltModel
from llmship.validate.onnx_export import OnnxExport
from llmship.validate.quality import PerplexityReport, SmokeReport, run_evaluation


@step
def evaluate(built: BuiltModel, config: EvalConfig, onnx: OnnxExport | None = None) -> tuple[
        Annotated[PerplexityReport, "perplexity_report"], Annotated[SmokeReport, "smoke_report"]]:
    ppl, smoke = run_evaluation(built.path, onnx.path if onnx else None, config.heldout_file, config.smoke_file,
                                window=config.window, stride=config.stride, max_eval_tokens=config.max_eval_tokens,
                                smoke_max_tokens=config.smoke_max_tokens)
    return ppl, smoke  # a tuple literal: ZenML reads it as two artifacts
