"""ONNX export with KV cache: manifest, caching, and parity with PyTorch across the sliding window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmship.validate.onnx_export import EXPORTER_VERSION, export_onnx
from llmship.validate.parity import check_parity
from llmship.validate.reference import SamplingParams, load_engine
from llmship.validate.reference.onnx_backend import MANIFEST

LONG = "Every morning the baker lights the oven, weighs the flour, and waits for the dough to rise."


@pytest.fixture(scope="module")
def onnx_engine(tiny_built, tiny_onnx):
    return load_engine(tiny_built.folder, "onnx", onnx_dir=tiny_onnx.path)


def test_manifest_fields(tiny_onnx, tiny_built):
    folder = Path(tiny_onnx.path)
    assert (folder / tiny_onnx.file).is_file()
    assert tiny_onnx.num_layers == 4
    assert tiny_onnx.num_kv_heads == 1
    assert tiny_onnx.head_dim == 32
    assert tiny_onnx.opset == 18
    assert tiny_onnx.size_bytes == sum(p.stat().st_size for p in folder.iterdir() if p.name != MANIFEST)
    assert tiny_onnx.size_bytes > 4 * tiny_built.num_parameters * 0.9  # fp32 weights are in there
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["exporter"] == EXPORTER_VERSION
    assert manifest["num_layers"] == 4
    assert not list(folder.parent.glob(f".{folder.name}.tmp-*"))  # no leftover temp folder


def test_second_export_is_cached(tiny_onnx, tiny_built):
    again = export_onnx(tiny_built.folder, tiny_onnx.path)
    assert again.cached is True
    assert again.path == tiny_onnx.path
    assert again.export_seconds == tiny_onnx.export_seconds  # the manifest, not a new export


def test_export_of_a_missing_folder_is_an_export_error(tmp_path):
    from llmship.errors import ExportError

    with pytest.raises(ExportError) as err:
        export_onnx(tmp_path / "missing", tmp_path / "onnx")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "onnx").exists()


def test_onnx_backend_name_and_inputs(onnx_engine):
    assert onnx_engine.name.startswith("onnxruntime")
    names = {i.name for i in onnx_engine.backend.session.get_inputs()}
    assert {"input_ids", "attention_mask", "position_ids", "past_key_values.3.value"} <= names


def test_empty_past_prefill_matches_torch_logits(onnx_engine, torch_engine):
    ids = torch.tensor([onnx_engine.encode(LONG)])
    mask = torch.ones_like(ids)
    pos = torch.arange(ids.shape[1]).unsqueeze(0)
    past = onnx_engine.backend.empty_past(1)
    assert all(p.shape == (1, 1, 0, 32) for p in past)
    logits, present = onnx_engine.backend.forward(ids, mask, pos, past)
    ref, _ = torch_engine.backend.forward(ids, mask, pos, torch_engine.backend.empty_past(1))
    assert logits.shape == ref.shape == (1, len(onnx_engine.tokenizer))
    assert torch.allclose(logits, ref, atol=1e-3)
    assert len(present) == 8
    assert present[0].shape == (1, 1, ids.shape[1], 32)


def test_onnx_greedy_equals_torch_beyond_the_sliding_window(onnx_engine, torch_engine):
    prompts = [onnx_engine.encode(LONG), onnx_engine.encode("The old cat")]
    assert len(prompts[0]) > 4 * 4  # well past the 4-token window
    params = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    onnx_out = onnx_engine.generate(prompts, params)  # batched: left padding on the short prompt
    torch_out = torch_engine.generate(prompts, params)
    assert [c.token_ids for c in onnx_out] == [c.token_ids for c in torch_out]
    assert [c.text for c in onnx_out] == [c.text for c in torch_out]


def test_check_parity(onnx_engine, torch_engine):
    prompts = [LONG, "The old cat sat quietly.", "Water boils at 100 degrees"]
    report = check_parity(torch_engine, onnx_engine, prompts, greedy_tokens=16)
    assert report.prompts == 3
    assert report.positions == 3 * 16
    assert report.top1_agreement == 1.0
    assert report.max_abs_logit_diff < 1e-3
    assert report.mean_abs_logit_diff <= report.max_abs_logit_diff
    assert report.greedy_agreement == 1.0
    assert report.greedy_exact_prompts == 3
    assert set(report.metrics()) == {"parity_max_abs_logit_diff", "parity_mean_abs_logit_diff",
                                     "parity_top1_agreement", "parity_greedy_agreement"}


def test_check_parity_of_an_engine_with_itself_is_exact(torch_engine):
    report = check_parity(torch_engine, torch_engine, [LONG], greedy_tokens=8)
    assert report.max_abs_logit_diff == 0.0
    assert report.top1_agreement == report.greedy_agreement == 1.0


class _DriftsAtStep:
    """A backend that adds a large logit to one token from the ``step``-th forward call of each run on: a candidate
    that computes what the reference does, then drifts."""

    def __init__(self, backend, step: int, token: int) -> None:
        self.backend, self.step, self.token, self.calls = backend, step, token, 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def empty_past(self, batch):
        self.calls = 0
        return self.backend.empty_past(batch)

    def forward(self, input_ids, mask, positions, past):
        logits, past = self.backend.forward(input_ids, mask, positions, past)
        if self.calls >= self.step:
            logits = logits.clone()
            logits[:, self.token] += 1e4
        self.calls += 1
        return logits, past


def test_check_parity_counts_the_greedy_prefix_up_to_the_first_drift(torch_engine):
    """Both views see a drift from the fourth token on: teacher-forced top-1 disagrees at 5 of 8 positions, and the
    candidate's own batched greedy run keeps a common prefix of 3 tokens with the reference's."""
    import copy

    prompts = [LONG, "The old cat sat quietly."]
    clean = check_parity(torch_engine, torch_engine, prompts, greedy_tokens=8)
    token = 7  # a control token neither prompt continues with
    drifting = copy.copy(torch_engine)
    drifting.backend = _DriftsAtStep(torch_engine.backend, step=3, token=token)
    report = check_parity(torch_engine, drifting, prompts, greedy_tokens=8)
    assert clean.top1_agreement == clean.greedy_agreement == 1.0
    assert report.greedy_agreement == 3 / 8 and report.greedy_exact_prompts == 0
    assert report.top1_agreement == 3 / 8
    assert report.max_abs_logit_diff >= 1e4 - 1
