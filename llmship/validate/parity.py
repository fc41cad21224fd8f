"""``ParityReport``: does the ONNX graph compute what the PyTorch model computes?

Two views, because each catches different bugs:

- *teacher-forced*: both backends see the same tokens (PyTorch's greedy choice)
  step by step; we record max/mean |Δlogits| and top-1 agreement at every
  position. This isolates numerical drift from divergence.
- *free-running greedy*: each backend decodes on its own (batched, so left
  padding is exercised too); we record how many of the first N tokens agree as a
  common prefix. This is what a user of the served model would notice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import BaseModel

from llmship.validate.reference.base import Engine, SamplingParams
from llmship.validate.reuse import content_key, reuse_or_measure


class ParityReport(BaseModel):
    prompts: int
    positions: int
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    top1_agreement: float
    greedy_tokens: int
    greedy_agreement: float
    greedy_exact_prompts: int
    seconds: float
    reused: bool = False  # the same comparison (model, export, prompts, software) was measured before: its result

    def metrics(self) -> dict[str, float]:
        return {
            "parity_max_abs_logit_diff": self.max_abs_logit_diff,
            "parity_mean_abs_logit_diff": self.mean_abs_logit_diff,
            "parity_top1_agreement": self.top1_agreement,
            "parity_greedy_agreement": self.greedy_agreement,
        }


def check_parity(reference: Engine, candidate: Engine, prompts: Sequence[str], greedy_tokens: int = 32) -> ParityReport:
    started = time.perf_counter()
    encoded = [reference.encode(p) for p in prompts]
    max_diff, sum_diff, agree, positions = 0.0, 0.0, 0, 0
    with torch.inference_mode():
        for ids in encoded:
            for ref_logits, cand_logits in _lockstep(reference, candidate, ids, greedy_tokens):
                diff = (ref_logits - cand_logits).abs()
                max_diff = max(max_diff, float(diff.max()))
                sum_diff += float(diff.mean())
                agree += int(ref_logits.argmax() == cand_logits.argmax())
                positions += 1
    params = SamplingParams(max_tokens=greedy_tokens, temperature=0.0, ignore_eos=True)
    ref_out = reference.generate(encoded, params)
    cand_out = candidate.generate(encoded, params)
    prefix_total, exact = 0, 0
    for r, c in zip(ref_out, cand_out):
        prefix = 0
        for a, b in zip(r.token_ids, c.token_ids):
            if a != b:
                break
            prefix += 1
        prefix_total += prefix
        exact += int(r.token_ids == c.token_ids)
    return ParityReport(
        prompts=len(encoded),
        positions=positions,
        max_abs_logit_diff=max_diff,
        mean_abs_logit_diff=sum_diff / max(positions, 1),
        top1_agreement=agree / max(positions, 1),
        greedy_tokens=greedy_tokens,
        greedy_agreement=prefix_total / max(greedy_tokens * len(encoded), 1),
        greedy_exact_prompts=exact,
        seconds=round(time.perf_counter() - started, 2),
    )


def _lockstep(reference: Engine, candidate: Engine, ids: list[int], steps: int):
    """Yield (reference, candidate) last-position logits, feeding both the reference's greedy token."""
    input_ids = torch.tensor([ids])
    mask = torch.ones_like(input_ids)
    pos = torch.arange(len(ids)).unsqueeze(0)
    ref_past = reference.backend.empty_past(1)
    cand_past = candidate.backend.empty_past(1)
    for _ in range(steps):
        ref_logits, ref_past = reference.backend.forward(input_ids, mask, pos, ref_past)
        cand_logits, cand_past = candidate.backend.forward(input_ids, mask, pos, cand_past)
        yield ref_logits[0], cand_logits[0]
        input_ids = ref_logits.argmax(-1).view(1, 1)
        mask = torch.cat([mask, torch.ones((1, 1), dtype=torch.long)], dim=1)
        pos = pos[:, -1:] + 1


def run_parity(hf_dir: str, onnx_dir: str, prompts_file: str, greedy_tokens: int = 32, threads: int = 0) -> ParityReport:
    """Load PyTorch fp32 (the numerical reference) and the ONNX export, then compare them; an unchanged comparison
    is read back from beside the export (``llmship.validate.reuse``)."""
    from llmship.validate.quality import load_prompts
    from llmship.validate.reference.loader import load_engine

    def measure() -> ParityReport:
        reference = load_engine(hf_dir, "pytorch", dtype="float32", threads=threads)
        candidate = load_engine(hf_dir, "onnx", onnx_dir=onnx_dir, threads=threads)
        return check_parity(reference, candidate, [str(p) for p in load_prompts(prompts_file)], greedy_tokens)

    reference_code = Path(__file__).parent / "reference"
    key = content_key([Path(hf_dir), Path(onnx_dir)], [Path(prompts_file)],
                      code=[Path(__file__), *sorted(reference_code.glob("*.py"))], extra=f"greedy={greedy_tokens}")
    return reuse_or_measure(Path(onnx_dir) / f"reused-parity-{key}.json", ParityReport, measure)
