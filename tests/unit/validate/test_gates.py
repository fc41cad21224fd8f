"""evaluate_gates: thresholds, missing metrics, skipped parity gates, the champion regression gate."""

from __future__ import annotations

import pytest

from llmship.release import PARITY_GATES
from llmship.validate.gates import GateThresholds, evaluate_gates

GOOD = {
    "parity_max_abs_logit_diff": 1e-4,
    "parity_top1_agreement": 1.0,
    "parity_greedy_agreement": 1.0,
    "engine_parity_top1_agreement": 1.0,
    "engine_parity_greedy_close": 1.0,
    "perplexity": 20.0,
    "smoke_pass_rate": 1.0,
    "decode_tok_s": 30.0,
    "ttft_s": 0.2,
}
ALL_GATES = set(GOOD)


def test_all_pass():
    report = evaluate_gates(GOOD, GateThresholds())
    assert report.passed
    assert report.failures == []
    assert {r.name for r in report.results} == ALL_GATES
    assert report.reason() == "all gates passed"


def test_values_on_the_threshold_pass():
    t = GateThresholds()
    edge = {**GOOD, "perplexity": t.max_perplexity, "smoke_pass_rate": t.smoke_pass_rate, "ttft_s": t.max_ttft_s,
            "decode_tok_s": t.min_decode_tok_s, "parity_max_abs_logit_diff": t.parity_max_abs_logit_diff,
            "engine_parity_top1_agreement": t.engine_parity_top1_agreement,
            "engine_parity_greedy_close": t.engine_parity_greedy_close}
    assert evaluate_gates(edge, t).passed


@pytest.mark.parametrize(
    ("metric", "bad"),
    [
        ("parity_max_abs_logit_diff", 0.5),
        ("engine_parity_top1_agreement", 0.5),
        ("engine_parity_greedy_close", 0.5),
        ("parity_top1_agreement", 0.5),
        ("parity_greedy_agreement", 0.1),
        ("perplexity", 1000.0),
        ("smoke_pass_rate", 0.5),
        ("decode_tok_s", 0.5),
        ("ttft_s", 60.0),
    ],
)
def test_each_failing_gate_is_named(metric, bad):
    report = evaluate_gates({**GOOD, metric: bad}, GateThresholds())
    assert not report.passed
    assert [r.name for r in report.failures] == [metric]
    reason = report.reason()
    assert reason.startswith(metric) and "FAILED" in reason
    assert "\n" not in reason
    for other in ALL_GATES - {metric}:
        assert f"{other} " not in reason.replace(f"{metric} ", "")


def test_two_failures_are_both_in_the_reason():
    report = evaluate_gates({**GOOD, "perplexity": 99.0, "ttft_s": 9.0}, GateThresholds())
    assert {r.name for r in report.failures} == {"perplexity", "ttft_s"}
    assert "perplexity 99 FAILED (needs <= 60)" in report.reason()
    assert "ttft_s 9 FAILED (needs <= 5)" in report.reason()


def test_missing_metric_fails():
    metrics = {k: v for k, v in GOOD.items() if k != "decode_tok_s"}
    report = evaluate_gates(metrics, GateThresholds())
    assert not report.passed
    (failure,) = report.failures
    assert failure.name == "decode_tok_s" and failure.value is None
    assert "decode_tok_s missing FAILED" in report.reason()


@pytest.mark.parametrize("metric", ["perplexity", "parity_top1_agreement"])
def test_nan_metric_fails(metric):
    report = evaluate_gates({**GOOD, metric: float("nan")}, GateThresholds())
    assert [r.name for r in report.failures] == [metric]


def test_skip_removes_parity_gates():
    metrics = {k: v for k, v in GOOD.items() if k not in PARITY_GATES}
    assert not evaluate_gates(metrics, GateThresholds()).passed
    report = evaluate_gates(metrics, GateThresholds(), skip=PARITY_GATES)
    assert report.passed
    assert {r.name for r in report.results} == ALL_GATES - PARITY_GATES


def test_custom_thresholds_are_used():
    strict = GateThresholds(max_perplexity=10.0)
    report = evaluate_gates(GOOD, strict)
    assert [r.name for r in report.failures] == ["perplexity"]
    assert report.failures[0].threshold == 10.0


def test_champion_perplexity_regression_gate():
    t = GateThresholds(max_perplexity_regression=0.05)
    champion = {"perplexity": 20.0}
    within = evaluate_gates({**GOOD, "perplexity": 20.9}, t, champion=champion)
    assert within.passed
    gate = next(r for r in within.results if r.name == "perplexity_vs_champion")
    assert gate.threshold == pytest.approx(21.0)

    worse = evaluate_gates({**GOOD, "perplexity": 21.5}, t, champion=champion)
    assert [r.name for r in worse.failures] == ["perplexity_vs_champion"]  # still under the absolute 60
    assert "perplexity_vs_champion" in worse.reason()


def test_no_champion_gate_without_champion_perplexity():
    for champion in (None, {}, {"ttft_s": 0.1}):
        names = {r.name for r in evaluate_gates(GOOD, GateThresholds(), champion=champion).results}
        assert "perplexity_vs_champion" not in names


def test_gates_that_do_not_apply_are_recorded_skipped_not_passed():
    hosted = {k: v for k, v in GOOD.items() if not k.startswith(("parity_", "engine_parity_", "perplexity"))}
    skipped = {g: "hosted model" for g in PARITY_GATES} | {"perplexity": "not available: no logprobs"}
    report = evaluate_gates(hosted, GateThresholds(), {"perplexity": 10.0},
                            skip={"engine_parity_top1_agreement", "engine_parity_greedy_close"},
                            not_applicable=skipped)
    assert report.passed
    assert {r.name for r in report.skipped} == set(skipped)
    assert all(not r.passed and r.value is None for r in report.skipped)
    assert "perplexity_vs_champion" not in {r.name for r in report.results}  # no perplexity: nothing to compare
    assert next(r for r in report.results if r.name == "perplexity").line() == \
        "perplexity skipped (not available: no logprobs)"
    slow = evaluate_gates({**hosted, "ttft_s": 9.0}, GateThresholds(), not_applicable=skipped,
                          skip={"engine_parity_top1_agreement", "engine_parity_greedy_close"})
    assert [r.name for r in slow.failures] == ["ttft_s"]
