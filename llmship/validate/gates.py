"""Gates: every measured number compared with its threshold and with the champion.

A release is a champion only if every gate passes. Gate thresholds live in the
pipeline config (``GateThresholds``, one field per YAML key); the champion
comparison stops slow regressions that each stay under an absolute threshold.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Op = Literal["<=", ">="]


class GateThresholds(BaseModel):
    # A misspelt or retired gate (engine_parity_greedy_agreement, renamed engine_parity_greedy_close)
    # must not silently fall back to the default threshold.
    model_config = ConfigDict(extra="forbid")

    parity_max_abs_logit_diff: float = Field(1e-2, description="ONNX vs PyTorch fp32, teacher-forced")
    parity_top1_agreement: float = 0.99
    parity_greedy_agreement: float = 0.9
    engine_parity_top1_agreement: float = Field(0.95, description="vLLM (as served) vs the fp32 reference")
    engine_parity_greedy_close: float = Field(
        1.0, description="prompts whose greedy continuations agree or part at a near-tie (vLLM's convention)")
    max_perplexity: float = 60.0
    smoke_pass_rate: float = 1.0
    min_decode_tok_s: float = 2.0
    max_ttft_s: float = 5.0
    max_perplexity_regression: float = Field(0.05, description="allowed relative rise over the champion's")


class GateResult(BaseModel):
    name: str
    value: float | None
    threshold: float
    op: Op
    passed: bool
    skipped: str | None = None  # why the gate does not apply (a hosted model has no weights to export): not passed

    def line(self) -> str:
        if self.skipped:
            return f"{self.name} skipped ({self.skipped})"
        shown = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{self.name} {shown} {'ok' if self.passed else 'FAILED'} (needs {self.op} {self.threshold:.4g})"


class GateReport(BaseModel):
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        """Every gate that applies passed (a skipped one is recorded, not counted)."""
        return not self.failures

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed and not r.skipped]

    @property
    def skipped(self) -> list[GateResult]:
        return [r for r in self.results if r.skipped]

    def reason(self) -> str:
        """One line naming every failed gate."""
        return "; ".join(r.line() for r in self.failures) or "all gates passed"


_CHECKS: list[tuple[str, str, Op]] = [
    ("parity_max_abs_logit_diff", "parity_max_abs_logit_diff", "<="),
    ("parity_top1_agreement", "parity_top1_agreement", ">="),
    ("parity_greedy_agreement", "parity_greedy_agreement", ">="),
    ("engine_parity_top1_agreement", "engine_parity_top1_agreement", ">="),
    ("engine_parity_greedy_close", "engine_parity_greedy_close", ">="),
    ("perplexity", "max_perplexity", "<="),
    ("smoke_pass_rate", "smoke_pass_rate", ">="),
    ("decode_tok_s", "min_decode_tok_s", ">="),
    ("ttft_s", "max_ttft_s", "<="),
]


def evaluate_gates(metrics: dict[str, float], thresholds: GateThresholds,
                   champion: dict[str, float] | None = None, skip: set[str] | None = None,
                   not_applicable: dict[str, str] | None = None) -> GateReport:
    """Judge ``metrics``; a metric that was not measured fails its gate unless named in ``skip`` (left out) or
    in ``not_applicable`` (recorded as skipped, with the reason: the registry shows it was not passed)."""
    results = []
    not_applicable = not_applicable or {}
    for metric, field, op in _CHECKS:
        if skip and metric in skip:
            continue
        limit = float(getattr(thresholds, field))
        if metric in not_applicable:
            results.append(GateResult(name=metric, value=None, threshold=limit, op=op, passed=False,
                                      skipped=not_applicable[metric]))
            continue
        results.append(_judge(metric, metrics.get(metric), limit, op))
    if champion and champion.get("perplexity") is not None and "perplexity" not in not_applicable:
        limit = float(champion["perplexity"]) * (1 + thresholds.max_perplexity_regression)
        results.append(_judge("perplexity_vs_champion", metrics.get("perplexity"), limit, "<="))
    return GateReport(results=results)


def _judge(name: str, value: float | None, limit: float, op: Op) -> GateResult:
    ok = value is not None and (value <= limit if op == "<=" else value >= limit)
    return GateResult(name=name, value=value, threshold=limit, op=op, passed=ok)
