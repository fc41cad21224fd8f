"""Release decisions as plain functions: which metrics a version carries, whether it may ship."""

from __future__ import annotations

import tempfile
from pathlib import Path

from llmship.errors import GateFailed
from llmship.hosted.spec import HOSTED_FILE, HostedModel
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
HOSTED_BACKEND = "hosted"
# what a hosted version's gate report records instead of a verdict
HOSTED_NOT_APPLICABLE = {**{g: "hosted model: no weights to build, export or compare" for g in PARITY_GATES},
                         **{g: "hosted model: vLLM does not serve it here" for g in ENGINE_PARITY_GATES}}


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


def register_hosted(registry: ModelRegistry, name: str, spec: HostedModel, *, smoke: SmokeReport,
                    bench: BenchmarkReport, ppl: PerplexityReport | None, perplexity_unavailable: str | None,
                    chart: str | None, lineage: dict[str, str], params: dict,
                    run_id: str | None = None) -> ModelVersionRef:
    """A hosted model version: its artifact is the upstream's description (``hosted.json``: provider, base URL,
    model, the key's variable name; no secret), with the reports and a model card beside it."""
    metrics: dict[str, float] = {"smoke_pass_rate": smoke.pass_rate, **bench.metrics(served=HOSTED_BACKEND)}
    if ppl is not None:
        metrics.update(perplexity=ppl.perplexity, perplexity_tokens=float(ppl.tokens))
    perplexity_status = "measured (echo logprobs)" if ppl is not None else f"not available: {perplexity_unavailable}"
    with tempfile.TemporaryDirectory(prefix="llmship-hosted-") as tmp:
        root = Path(tmp)
        model = root / "model"
        model.mkdir()
        (model / HOSTED_FILE).write_text(spec.model_dump_json(indent=2))
        files: list[tuple[str, Path]] = []
        for label, report in (("smoke", smoke), ("perplexity", ppl), ("benchmark", bench)):
            if report is not None:
                path = root / f"{label}.json"
                path.write_text(report.model_dump_json(indent=2))
                files.append(("reports", path))
        (root / "benchmark.txt").write_text(bench.table() + "\n")
        files.append(("reports", root / "benchmark.txt"))
        if chart:
            png = root / "benchmark.png"
            png.write_bytes(Path(chart).read_bytes())
            files.append(("reports", png))
        card = root / "MODEL_CARD.md"
        card.write_text(_hosted_card(name, spec, metrics, lineage, perplexity_status))
        files.append(("", card))
        described = {"hosted_provider": spec.provider, "hosted_model": spec.model,
                     "hosted_base_url": spec.base_url or "provider default",
                     "hosted_api_key_env": spec.api_key_env or "none"}
        return registry.register(
            name, model, run_id=run_id, metrics=metrics, files=files,
            params={**params, **described, "model_source": spec.source, "serve_backend": HOSTED_BACKEND},
            tags={**lineage, **described, "model_source": spec.source, "serve_backend": HOSTED_BACKEND,
                  "perplexity_status": perplexity_status[:500]},
            description=f"{spec.source} served through llmship's gateway ({spec.describe()})")


def _hosted_card(name: str, spec: HostedModel, metrics: dict[str, float], lineage: dict[str, str],
                 perplexity_status: str) -> str:
    lines = [f"# {name}", "", ("A hosted model released with llmship: served by its provider, through llmship's "
                               "gateway."), "", "## Upstream", f"- source: `{spec.source}`", f"- provider: `{spec.provider}`",
             f"- model: `{spec.model}`", f"- base URL: `{spec.base_url or 'the provider default'}`",
             f"- key: read from `${spec.api_key_env}` where it is called" if spec.api_key_env else "- key: none",
             f"- perplexity: {perplexity_status}", "", "## Lineage",
             *[f"- {k}: `{v}`" for k, v in sorted(lineage.items())], "", "## Measurements", "| metric | value |",
             "|---|---|", *[f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())],
             "", "## Gates that do not apply", *[f"- {g}: {why}" for g, why in sorted(HOSTED_NOT_APPLICABLE.items())]]
    return "\n".join(lines) + "\n"


def promote_release(registry: ModelRegistry, ref: ModelVersionRef, thresholds: GateThresholds,
                    with_parity: bool = True) -> Promotion:
    """Judge the version's logged metrics; champion or challenger. Raises ``GateFailed`` for the latter.

    A hosted version (``serve_backend=hosted``) records the parity gates, and perplexity where the upstream gives
    no log-probabilities, as skipped with the reason: every gate that applies must pass, as for any release."""
    metrics = registry.metrics(ref)
    champion = registry.by_alias(ref.name, "champion")
    champion_metrics = registry.metrics(champion) if champion and champion.version != ref.version else None
    not_applicable: dict[str, str] = {}
    skip = set() if with_parity else set(PARITY_GATES)
    if ref.tags.get("serve_backend") == HOSTED_BACKEND:
        skip = set()
        not_applicable = dict(HOSTED_NOT_APPLICABLE)
        if "perplexity" not in metrics:
            not_applicable["perplexity"] = ref.tags.get("perplexity_status") or "not available"
    elif not any(k.startswith("engine_parity_") for k in metrics):
        skip |= ENGINE_PARITY_GATES  # a version registered before the engine check existed (or without it)
    report = evaluate_gates(metrics, thresholds, champion_metrics, skip=skip, not_applicable=not_applicable)
    promotion = registry.promote(ref.name, ref.version, report)
    if promotion.status != "champion":
        raise GateFailed(f"{ref.name} version {ref.version} is not released: {report.reason()}")
    return promotion
