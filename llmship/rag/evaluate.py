"""``llmship eval rag``: retrieval quality per mode and the answer citation rate, logged to MLflow.

- Retrieval: recall@k, MRR@k (``llmship.rag.recall_eval``) for dense, keyword, hybrid and graph over the
  graph the services use, with the default reranker, on the labelled set (``data/eval/rag_questions.jsonl``).
- Citations: each question is asked of a running RAG service (``--url``, the openai SDK). An answer is
  *correctly cited* when a source it cites (``citations[].cited``: a ``[n]`` marker, or copied text —
  ``llmship.rag.citations``) contains the question's gold passage. Also reported: the share of answers whose
  sources hold the gold passage at all (the ceiling the model works under) and the share using markers.
- Targets (the issue's): hybrid recall@k ≥ dense + 5 points, and ≥ 0.8.

``log_to_mlflow`` writes one run per evaluation into the experiment ``rag-eval`` of llmship's MLflow store.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from llmship.rag.recall_eval import EvalQuestion, RetrievalEval, aevaluate_retrieval, squash

EXPERIMENT = "rag-eval"


class CitationEval(BaseModel):
    questions: int
    cited_correctly: float  # answers whose cited source contains the gold passage
    sources_hold_gold: float  # answers whose sources (cited or not) contain it
    used_markers: float  # answers citing with [n] markers
    cited_any: float  # answers citing anything
    mean_latency_ms: float
    failures: int  # requests that failed (counted as not cited)


class RagEvalReport(BaseModel):
    retrieval: RetrievalEval
    citation: CitationEval | None = None
    hybrid_gain_points: float | None = None
    targets: dict[str, bool] = {}
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        """Flat metric names for MLflow (``recall_at_5.hybrid`` ...)."""
        k = self.retrieval.k
        out: dict[str, float] = {}
        for mode, r in self.retrieval.modes.items():
            out[f"recall_at_{k}.{mode}"] = r.recall
            out[f"mrr_at_{k}.{mode}"] = r.mrr
            out[f"latency_mean_ms.{mode}"] = r.mean_ms
        if self.citation is not None:
            out |= {"citation_rate": self.citation.cited_correctly,
                    "sources_hold_gold": self.citation.sources_hold_gold,
                    "marker_rate": self.citation.used_markers}
        if self.hybrid_gain_points is not None:
            out["hybrid_gain_points"] = self.hybrid_gain_points
        return out

    def table(self) -> str:
        lines = [self.retrieval.table()]
        if self.hybrid_gain_points is not None:
            lines.append(f"hybrid - dense: {self.hybrid_gain_points:+.1f} points")
        c = self.citation
        if c is not None:
            lines.append(f"answers: {c.questions}, correctly cited {c.cited_correctly:.3f}, sources hold the gold "
                         f"passage {c.sources_hold_gold:.3f}, [n] markers {c.used_markers:.3f}, cite anything "
                         f"{c.cited_any:.3f}, mean {c.mean_latency_ms:.0f} ms, failed {c.failures}")
        lines += [f"target {name}: {'met' if ok else 'missed'}" for name, ok in self.targets.items()]
        return "\n".join(lines)


async def citation_eval(client: Any, questions: Sequence[Any], *, model: str = "rag", max_tokens: int = 64,
                        concurrency: int = 4) -> CitationEval:
    """Ask each question of the RAG service behind ``client`` (an ``openai.AsyncOpenAI``), greedy."""
    qs = [q if isinstance(q, EvalQuestion) else EvalQuestion.model_validate(q) for q in questions]
    gate = asyncio.Semaphore(concurrency)

    async def one(q: EvalQuestion) -> tuple[bool, bool, bool, bool, float] | None:
        async with gate:
            started = time.perf_counter()
            try:
                out = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": q.question}], max_tokens=max_tokens,
                    temperature=0)
            except Exception:  # noqa: BLE001 - a failed answer counts as uncited; the count is reported
                return None
            ms = (time.perf_counter() - started) * 1000
        citations = getattr(out, "citations", None) or []
        gold = squash(q.gold)
        holds = [gold in squash(c["text"]) for c in citations]
        cited = [c for c, _ in zip(citations, holds, strict=True) if c.get("cited")]
        right = any(h and c.get("cited") for c, h in zip(citations, holds, strict=True))
        return right, any(holds), any(c.get("cited_by") == "marker" for c in cited), bool(cited), ms

    results = await asyncio.gather(*(one(q) for q in qs))
    done = [r for r in results if r is not None]
    n = len(qs)

    def share(i: int) -> float:
        return sum(1 for r in done if r[i]) / n if n else 0.0

    return CitationEval(questions=n, cited_correctly=share(0), sources_hold_gold=share(1), used_markers=share(2),
                        cited_any=share(3), mean_latency_ms=float(np.mean([r[4] for r in done])) if done else 0.0,
                        failures=n - len(done))


async def aevaluate_rag(retriever: Any, questions: Sequence[Any], *, k: int = 5,
                        modes: Sequence[str] = ("dense", "keyword", "hybrid", "graph"), client: Any = None,
                        model: str = "rag", max_tokens: int = 64) -> RagEvalReport:
    started = time.perf_counter()
    retrieval = await aevaluate_retrieval(retriever, questions, modes, k)
    citation = await citation_eval(client, questions, model=model, max_tokens=max_tokens) if client else None
    report = RagEvalReport(retrieval=retrieval, citation=citation)
    if "hybrid" in retrieval.modes:
        hybrid = retrieval.modes["hybrid"].recall
        report.targets["hybrid_recall_at_least_0.8"] = hybrid >= 0.8
        if "dense" in retrieval.modes:
            report.hybrid_gain_points = 100 * (hybrid - retrieval.modes["dense"].recall)
            report.targets["hybrid_beats_dense_by_5_points"] = report.hybrid_gain_points >= 5.0 - 1e-9
    report.seconds = time.perf_counter() - started
    return report


def log_to_mlflow(report: RagEvalReport, *, params: dict[str, Any] | None = None,
                  tracking_uri: str | None = None) -> str:
    """One MLflow run in experiment ``rag-eval``: metrics, params, the whole report as ``rag_eval.json``."""
    import mlflow

    from llmship.registry import ModelRegistry

    experiment_id = ModelRegistry(tracking_uri).ensure_experiment(EXPERIMENT)  # (also sets mlflow's tracking URI)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"rag-eval-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        mlflow.log_params({"k": report.retrieval.k, "questions": next(iter(report.retrieval.modes.values())).questions,
                           **(params or {})})
        mlflow.log_metrics(report.metrics())
        mlflow.log_dict(report.model_dump(mode="json"), "rag_eval.json")
        mlflow.set_tags({f"target.{name}": "met" if ok else "missed" for name, ok in report.targets.items()})
        return run.info.run_id


class RagEvalConfig(BaseModel):
    """What ``llmship eval rag`` and the ``evaluate_rag`` step run (the ``rag_eval`` pipeline's parameters)."""

    questions: str | None = None  # a rag_questions.jsonl; None: the shipped set
    k: int = Field(default=5, ge=1, le=50)
    modes: list[str] = ["dense", "keyword", "hybrid", "graph"]
    rag_url: str | None = "http://127.0.0.1:3001"  # the RAG service to ask; None: retrieval only
    max_tokens: int = Field(default=64, ge=1)
    embed_threads: int = 1
    log_mlflow: bool = True


def run_rag_eval(config: RagEvalConfig, graph: Any = None) -> tuple[RagEvalReport, str | None]:
    """Evaluate over the graph the services use (``GraphSettings.from_env()`` unless given); returns the report
    and the MLflow run id (None when not logged). An unreachable RAG service is a one-line ``EngineUnavailable``."""
    import httpx
    import openai

    from llmship.errors import EngineUnavailable
    from llmship.knowledge.embedder import Embedder
    from llmship.knowledge.graphstore.graph import GraphStore
    from llmship.knowledge.retrieval.retriever import Retriever
    from llmship.rag.eval_set import load_questions

    questions = load_questions(config.questions)
    client = None
    if config.rag_url:
        base = config.rag_url.rstrip("/")
        key = os.environ.get("LLMSHIP_API_KEY")  # the gateway's key, when the service asks for one
        try:
            probe = httpx.get(f"{base}/v1/models", timeout=10, headers={"Authorization": f"Bearer {key}"} if key
                              else None)
        except httpx.HTTPError as err:
            raise EngineUnavailable(f"cannot reach the RAG service at {base} ({type(err).__name__}); start it with "
                                    "`llmship serve rag` or evaluate retrieval only with --no-answers") from None
        if probe.status_code == 401:
            raise EngineUnavailable(f"the RAG service at {base} asks for an API key: set LLMSHIP_API_KEY "
                                    "(`llmship keys create --name eval --models 'rag*'`)")
        if probe.status_code != 200:
            raise EngineUnavailable(f"the RAG service at {base} answered {probe.status_code} on /v1/models")
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key or "unused", max_retries=0, timeout=600)
    own = graph is None
    graph = graph or GraphStore.connect()
    try:
        retriever = Retriever(graph, Embedder.load(threads=config.embed_threads))
        retriever.keyword_index.get(wait=True)  # every question on the same keyword index, not the first few on the fallback
        report = asyncio.run(aevaluate_rag(retriever, questions, k=config.k, modes=config.modes, client=client,
                                           max_tokens=config.max_tokens))
    finally:
        if own:
            graph.close()
    run_id = None
    if config.log_mlflow:
        run_id = log_to_mlflow(report, params={"modes": ",".join(config.modes), "rag_url": config.rag_url or "-",
                                               "reranker": getattr(retriever.reranker, "name", "none")})
    return report, run_id
