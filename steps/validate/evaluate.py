"""evaluate: held-out perplexity (transformers: it needs every position's logits)."""

from typing import Annotated

from zenml import step

from llmship.config import EvalConfig
from llmship.models import BuiltModel
from llmship.validate.quality import PerplexityReport, run_evaluation


@step
def evaluate(built: BuiltModel, config: EvalConfig) -> Annotated[PerplexityReport, "perplexity_report"]:
    report = run_evaluation(built.path, config.heldout_file, window=config.window, stride=config.stride,
                            max_eval_tokens=config.max_eval_tokens)
    print(f"result: held-out perplexity {report.perplexity:.2f} over {report.tokens} tokens"
          + (" (same model, text and libraries as a run before: its report)" if report.reused else ""))
    return report
