"""evaluate: held-out perplexity (transformers: it needs every position's logits)."""

from typing import Annotated

from zenml import step

from llmship.config import EvalConfig
from llmship.models import BuiltModel
from llmship.validate.quality import PerplexityReport, run_evaluation


@step
def evaluate(built: BuiltModel, config: EvalConfig) -> Annotated[PerplexityReport, "perplexity_report"]:
    return run_evaluation(built.path, config.heldout_file, window=config.window, stride=config.stride,
                          max_eval_tokens=config.max_eval_tokens)
