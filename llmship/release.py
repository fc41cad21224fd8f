"""Release decisions as plain functions: which metrics a version carries, whether it may ship."""

from __future__ import annotations

import tempfile
from pathlib import Path

from llmship.errors import GateFailed
from llmship.models.build import BuiltModel
from llmship.models.card import model_card
from llmship.registry import ModelRegistry, ModelVersionRef, Promotion
from llmship.validate.benchmark import BenchmarkReport
from llmship.validate.engine_check import EngineParityReport
from llmship.validate.gates import GateThresholds, evaluate_gates
from llmship.validate.parity import ParityReport
from llmship.validate.quality import PerplexityReport, SmokeReport

PARITY_GATES = {"parity_max_abs_logit_diff", "parity_top1_agreement", "parity_greedy_agreement"}
ENGINE_PARITY_GATES = {"engine_parity_top1_agreement", "engine_parity_greedy_close"}


def collect_metrics(parity: ParityReport | None, ppl: PerplexityReport, smoke: SmokeReport,
                    bench: BenchmarkReport, engine_parity: EngineParityReport | None = None) -> dict[str, float]:
    metrics: dict[str, float] = {"perplexity": ppl.perplexity, "smoke_pass_rate": smoke.pass_rate,
                                 "perplexity_tokens": float(ppl.tokens)}
    if parity is not None:
        metrics.update(parity.metrics())
    if engine_parity is not None:
        metrics.update(engine_parity.metrics())
    metrics.update(bench.metrics(served="vllm"))
    return metrics


def register_release(registry: ModelRegistry, name: str, built: BuiltModel, *, parity: ParityReport | None,
                     ppl: PerplexityReport, smoke: SmokeReport, bench: BenchmarkReport, chart: str | None,
                     lineage: dict[str, str], params: dict, run_id: str | None = None,
                     engine_parity: EngineParityReport | None = None) -> ModelVersionRef:
    """Log every report, the model card and the model folder, then create the version.

    vLLM serves every version (``serve_backend=vllm``); the ONNX export is registered beside it as a validated
    portable artifact (ONNX Runtime, Triton), not as a serving path."""
    metrics = collect_metrics(parity, ppl, smoke, bench, engine_parity)
    backend = "vllm"
    with tempfile.TemporaryDirectory(prefix="llmship-reports-") as tmp:
        reports = Path(tmp)
        files: list[tuple[str, Path]] = []
        for label, report in (("parity", parity), ("engine_parity", engine_parity), ("perplexity", ppl),
                              ("smoke", smoke), ("benchmark", bench)):
            if report is not None:
                path = reports / f"{label}.json"
                path.write_text(report.model_dump_json(indent=2))
                files.append(("reports", path))
        (reports / "benchmark.txt").write_text(bench.table() + f"\ngpu: {bench.gpu}\n")
        files.append(("reports", reports / "benchmark.txt"))
        if chart:
            png = reports / "benchmark.png"  # a stable name, whatever the step called its file
            png.write_bytes(Path(chart).read_bytes())
            files.append(("reports", png))
        card = reports / "MODEL_CARD.md"
        card.write_text(model_card(name, built, metrics, lineage))
        files.append(("", card))
        ref = registry.register(
            name, built.folder.parent, run_id=run_id, metrics=metrics, files=files,
            params={**params, "model_source": built.source, "serve_backend": backend},
            tags={**lineage, "model_source": built.source, "model_identity": built.identity, "serve_backend": backend},
            description=f"{built.source} served with {backend}",
        )
    return ref


def promote_release(registry: ModelRegistry, ref: ModelVersionRef, thresholds: GateThresholds,
                    with_parity: bool = True) -> Promotion:
    """Judge the version's logged metrics; champion or challenger. Raises ``GateFailed`` for the latter."""
    metrics = registry.metrics(ref)
    champion = registry.by_alias(ref.name, "champion")
    champion_metrics = registry.metrics(champion) if champion and champion.version != ref.version else None
    skip = set() if with_parity else set(PARITY_GATES)
    if not any(k.startswith("engine_parity_") for k in metrics):
        skip |= ENGINE_PARITY_GATES  # a version registered before the engine check existed (or without it)
    report = evaluate_gates(metrics, thresholds, champion_metrics, skip=skip)
    promotion = registry.promote(ref.name, ref.version, report)
    if promotion.status != "champion":
        raise GateFailed(f"{ref.name} version {ref.version} is not released: {report.reason()}")
    return promotion
