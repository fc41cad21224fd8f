"""Which engine serves a release is decided by the benchmark, among validated backends."""

from __future__ import annotations

from llmship.release import served_backend
from llmship.validate.benchmark import BenchmarkReport, BenchRow
from llmship.validate.parity import ParityReport


def _bench(**speed_at_16: float) -> BenchmarkReport:
    rows = [BenchRow(backend=b, device="cpu", batch=batch, decode_tok_s=s * batch / 16, output_tok_s=1, ttft_s=0.1,
                     peak_rss_mb=1) for b, s in speed_at_16.items() for batch in (1, 16)]
    rows.append(BenchRow(backend="pytorch", device="cuda", batch=64, decode_tok_s=9999, output_tok_s=1, ttft_s=0.1,
                         peak_rss_mb=1))  # a GPU row never decides what the CPU service runs
    return BenchmarkReport(rows=rows, gpu="unavailable", max_tokens=8, threads=0)


def _parity() -> ParityReport:
    fields = ParityReport.model_fields
    return ParityReport.model_construct(**{k: f.default for k, f in fields.items() if not f.is_required()})


def test_the_faster_backend_at_the_largest_batch_serves():
    assert served_backend(_parity(), _bench(pytorch=240, onnxruntime=140)) == "pytorch"
    assert served_backend(_parity(), _bench(pytorch=120, onnxruntime=140)) == "onnxruntime"
    assert served_backend(_parity(), _bench(pytorch=140, onnxruntime=140)) == "onnxruntime"  # a tie: ONNX


def test_without_a_checked_export_pytorch_serves():
    assert served_backend(None, _bench(pytorch=1, onnxruntime=999)) == "pytorch"
    assert served_backend(_parity(), None) == "onnxruntime"
