"""Deterministic measurements (ONNX parity, perplexity, the engine check's reference) are reused only for the very same
inputs."""

from __future__ import annotations

import shutil

from llmship.validate.parity import run_parity
from tests.conftest import REPO

PROMPTS = str(REPO / "data/eval/parity_prompts.yaml")


def test_the_same_comparison_is_reused_and_any_change_measures_again(tiny_built, tiny_onnx, tmp_path):
    onnx = tmp_path / "onnx"
    shutil.copytree(tiny_onnx.path, onnx)  # a copy: other tests keep their own export untouched
    first = run_parity(str(tiny_built.path), str(onnx), PROMPTS, greedy_tokens=4)
    again = run_parity(str(tiny_built.path), str(onnx), PROMPTS, greedy_tokens=4)
    assert not first.reused and again.reused
    assert again.model_dump(exclude={"reused"}) == first.model_dump(exclude={"reused"})
    assert not run_parity(str(tiny_built.path), str(onnx), PROMPTS, greedy_tokens=5).reused  # other settings
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text((REPO / "data/eval/parity_prompts.yaml").read_text() + "\n  - One more prompt.\n")
    assert not run_parity(str(tiny_built.path), str(onnx), str(prompts), greedy_tokens=4).reused  # other prompts
    (onnx / tiny_onnx.file).write_bytes((onnx / tiny_onnx.file).read_bytes())  # rewritten: a new export
    assert not run_parity(str(tiny_built.path), str(onnx), PROMPTS, greedy_tokens=4).reused


def test_perplexity_is_reused_for_the_same_model_text_and_settings(tiny_built, tmp_path):
    from llmship.validate.quality import run_evaluation

    model = tmp_path / "model"
    shutil.copytree(tiny_built.path, model / "hf")
    text = tmp_path / "heldout.txt"
    text.write_text((REPO / "data/eval/heldout.txt").read_text()[:2000])
    first = run_evaluation(model / "hf", text, window=64, stride=32)
    again = run_evaluation(model / "hf", text, window=64, stride=32)
    assert not first.reused and again.reused and again.perplexity == first.perplexity
    assert not run_evaluation(model / "hf", text, window=64, stride=16).reused
    text.write_text(text.read_text() + " And one more sentence.")
    assert not run_evaluation(model / "hf", text, window=64, stride=32).reused


def test_the_engine_checks_reference_is_reused_for_the_same_model_prompts_and_length(tiny_built, tmp_path):
    from llmship.validate.engine_check import reference_for

    model = tmp_path / "model"
    shutil.copytree(tiny_built.path, model / "hf")
    first = reference_for(model / "hf", PROMPTS, 4)
    again = reference_for(model / "hf", PROMPTS, 4)
    assert not first.reused and again.reused
    assert again.model_dump(exclude={"reused"}) == first.model_dump(exclude={"reused"})
    assert all(len(g) == 4 for g in again.greedy) and len(again.prompts) == len(first.prompts)
    assert not reference_for(model / "hf", PROMPTS, 5).reused  # another length
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text((REPO / "data/eval/parity_prompts.yaml").read_text() + "\n  - One more prompt.\n")
    other = reference_for(model / "hf", prompts, 4)
    assert not other.reused and len(other.prompts) == len(first.prompts) + 1
