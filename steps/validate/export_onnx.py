"""export_onnx: the built model as an ONNX graph with KV cache, next to its HF folder."""

from typing import Annotated

from zenml import step

from llmship.config import ExportConfig
from llmship.models import BuiltModel
from llmship.validate.onnx_export import OnnxExport
from llmship.validate.onnx_export import export_onnx as export_onnx_core


@step
def export_onnx(built: BuiltModel, config: ExportConfig) -> Annotated[OnnxExport, "onnx_export"]:
    onnx = export_onnx_core(built.folder, built.folder.parent / "onnx", opset=config.opset)
    print(f"result: opset {onnx.opset}, {onnx.size_bytes / 2**20:.0f} MiB")
    return onnx
