"""deploy_llm: build → export_onnx → check_parity → evaluate → check_engine → register → promote → build_bento → deploy.

A hosted source (``openai:<base_url>#<model>``, ``litellm:<provider>/<model>``) takes the steps that apply:
describe_hosted → check_hosted → register_hosted → promote → serve_hosted. Build, export and both parity gates
have no weights to work on: the gate report records them as skipped, not passed.

Run: ``zenml pipeline run pipelines.deploy_llm.deploy_llm -c configs/deploy_llm.yaml``.
Every parameter is a pydantic section from ``llmship.config`` (YAML keys = field names).
ZenML step caching is off: the core caches by content identity (model build,
ONNX export), which stays correct when the ZenML store and the cache folders
diverge, and validation/registration must run every time.
"""

from zenml import pipeline

from llmship.config import (
    BenchConfig,
    BuildConfig,
    EvalConfig,
    ExportConfig,
    ParityConfig,
    RegistryConfig,
    ServeConfig,
)
from llmship.lineage import config_hash
from llmship.models.source import ModelSource
from llmship.validate.gates import GateThresholds
from steps.build.build_model import build_model
from steps.build.describe_hosted import describe_hosted
from steps.release.build_bento import build_bento
from steps.release.deploy import deploy
from steps.release.promote import promote
from steps.release.register import register as register_step
from steps.release.register_hosted import register_hosted
from steps.release.serve_hosted import serve_hosted
from steps.validate.check_engine import check_engine
from steps.validate.check_hosted import check_hosted
from steps.validate.check_parity import check_parity
from steps.validate.evaluate import evaluate as evaluate_step
from steps.validate.export_onnx import export_onnx


@pipeline(enable_cache=False)
def deploy_llm(
    build: BuildConfig = BuildConfig(),
    export: ExportConfig = ExportConfig(),
    parity: ParityConfig = ParityConfig(),
    evaluate: EvalConfig = EvalConfig(),
    benchmark: BenchConfig = BenchConfig(),
    gates: GateThresholds = GateThresholds(),
    registry: RegistryConfig = RegistryConfig(),
    serve: ServeConfig = ServeConfig(),
) -> None:
    sections = {"build": build, "export": export, "parity": parity, "evaluate": evaluate, "benchmark": benchmark,
                "gates": gates, "registry": registry, "serve": serve}
    digest = config_hash({k: v.model_dump() for k, v in sections.items()})
    if ModelSource.parse(build.source).hosted:  # known when the DAG is compiled: the config names it
        hosted = describe_hosted(config=build)
        check, chart = check_hosted(hosted, evaluate=evaluate, benchmark=benchmark)
        version = register_hosted(hosted, check, chart, config=registry, config_hash=digest)
        promotion = promote(version, gates=gates, with_parity=False)
        if serve.enabled:
            serve_hosted(promotion, registry=registry, config=serve)
        return
    built = build_model(config=build)
    onnx = parity_report = None
    if export.enabled:
        onnx = export_onnx(built, config=export)
        parity_report = check_parity(built, onnx, config=parity)
    perplexity = evaluate_step(built, config=evaluate)
    # one vLLM engine, configured as it will serve: engine parity, smoke prompts, benchmark
    engine_parity, smoke, bench, chart = check_engine(built, parity=parity, evaluate=evaluate, benchmark=benchmark,
                                                      serve=serve, registry=registry)
    version = register_step(built, perplexity, smoke, bench, chart, config=registry,
                            config_hash=digest,
                            parity=parity_report, engine_parity=engine_parity)
    promotion = promote(version, gates=gates, with_parity=export.enabled, serve=serve)
    if serve.enabled:
        tag = build_bento(promotion, config=serve)
        deploy(tag, promotion, registry=registry, config=serve)
