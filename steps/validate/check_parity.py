"""check_parity: PyTorch fp32 vs ONNX Runtime logits and greedy tokens."""

from typing import Annotated

from zenml import step

from llmship.config import ParityConfig
from llmship.models import BuiltModel
from llmship.validate.onnx_export import OnnxExport
from llmship.validate.parity import ParityReport, run_parity


@step
def check_parity(built: BuiltModel, onnx: OnnxExport, config: ParityConfig) -> Annotated[ParityReport, "parity_report"]:
    report = run_parity(built.path, onnx.path, config.prompts_file, config.greedy_tokens)
    print(f"result: ONNX vs PyTorch top-1 {report.top1_agreement:.3f}, max |logit diff| {report.max_abs_logit_diff:.2g}"
          + (" (same model, export, prompts and libraries as a run before: its report)" if report.reused else ""))
    return report
