"""``ParityReport``: does the ONNX graph compute what the PyTorch model computes?

Two views, because each catches different bugs:

- *teacher-forced*: both backends see the same tokens (PyTorch's greedy choice)
  step by step, every prompt in one left-padded batch; we record max/mean
  |Δlogits| and top-1 agreement at every position. This isolates numerical drift
  from divergence.
- *free-running greedy*: the candidate decodes on its own (batched, so left
  padding is exercised there too) and we record how many of the first N tokens
  agree with the reference's greedy tokens as a common prefix. This is what a
  user of the served model would notice. The reference's greedy tokens are the
  ones the teacher-forced pass fed it, so it does not decode a second time.

One batch instead of one prompt at a time: 32 forward steps instead of 192 for
the six default prompts; the whole check took 46 s of a fresh deploy, ~25 s of
it the one-prompt-at-a-time pass (gemma-3-270m, 2 cores).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import BaseModel

from llmship.validate import reference
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
    greedy: list[list[int]] = [[] for _ in encoded]  # the reference's greedy tokens, per prompt
    with torch.inference_mode():
        for ref_logits, cand_logits, ref_top in _lockstep(reference, candidate, encoded, greedy_tokens):
            diff = (ref_logits - cand_logits).abs()
            max_diff = max(max_diff, float(diff.max()))
            sum_diff += float(diff.mean(-1).sum())
            agree += int((ref_top == cand_logits.argmax(-1)).sum())
            positions += len(encoded)
            for row, token in zip(greedy, ref_top.tolist(), strict=True):
                row.append(int(token))
    params = SamplingParams(max_tokens=greedy_tokens, temperature=0.0, ignore_eos=True)
    cand_out = candidate.generate(encoded, params)
    prefix_total, exact = 0, 0
    for r, c in zip(greedy, cand_out, strict=True):
        prefix = 0
        for a, b in zip(r, c.token_ids):
            if a != b:
                break
            prefix += 1
        prefix_total += prefix
        exact += int(r == c.token_ids)
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


def _lockstep(reference: Engine, candidate: Engine, prompts: list[list[int]], steps: int):
    """Yield (reference, candidate) last-position logits (prompts × vocabulary) of the left-padded batch and the
    reference's greedy tokens, which both are fed next."""
    input_ids, mask, pos = reference.left_pad(prompts)
    ref_past = reference.backend.empty_past(len(prompts))
    cand_past = candidate.backend.empty_past(len(prompts))
    for _ in range(steps):
        ref_logits, ref_past = reference.backend.forward(input_ids, mask, pos, ref_past)
        cand_logits, cand_past = candidate.backend.forward(input_ids, mask, pos, cand_past)
        tokens = ref_logits.argmax(-1)
        yield ref_logits, cand_logits, tokens
        input_ids = tokens.view(-1, 1)
        mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long)], dim=1)
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

    key = content_key([Path(hf_dir), Path(onnx_dir)], [Path(prompts_file)],
                      code=[Path(__file__), *reference.sources()], extra=f"greedy={greedy_tokens}")
    return reuse_or_measure(Path(onnx_dir) / f"reused-parity-{key}.json", ParityReport, measure)
