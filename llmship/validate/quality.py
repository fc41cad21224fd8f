"""Quality gates' measurements: perplexity on shipped held-out text; the smoke prompts' report (run on vLLM)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel


class PerplexityReport(BaseModel):
    tokens: int
    perplexity: float
    window: int
    stride: int
    seconds: float
    reused: bool = False  # measured before on the same model, text, settings and libraries (llmship.validate.reuse)


class SmokeResult(BaseModel):
    id: str
    text: str
    completion_tokens: int
    finish_reason: str
    ok: bool


class SmokeReport(BaseModel):
    results: list[SmokeResult]
    pass_rate: float


def perplexity(hf_dir: str | Path, text: str, window: int = 512, stride: int = 256, dtype: str = "float32",
               max_tokens: int | None = None) -> PerplexityReport:
    """Strided perplexity (each token scored once, with up to ``window`` tokens of context)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=getattr(torch, dtype)).eval()
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    if max_tokens:
        ids = ids[:max_tokens]
    nll, counted, prev_end = 0.0, 0, 0
    with torch.inference_mode():
        for begin in range(0, len(ids), stride):
            end = min(begin + window, len(ids))
            target_len = end - prev_end  # only tokens not scored by an earlier window
            chunk = ids[begin:end].unsqueeze(0)
            labels = chunk.clone()
            labels[:, :-target_len] = -100
            loss = model(input_ids=chunk, labels=labels).loss
            scored = int((labels[:, 1:] != -100).sum())
            nll += float(loss) * scored
            counted += scored
            prev_end = end
            if end == len(ids):
                break
    return PerplexityReport(tokens=counted, perplexity=math.exp(nll / max(counted, 1)), window=window, stride=stride,
                            seconds=round(time.perf_counter() - started, 2))


def load_prompts(path: str | Path) -> list[Any]:
    return yaml.safe_load(Path(path).read_text())["prompts"]


def run_evaluation(hf_dir: str | Path, heldout_file: str | Path, window: int = 512, stride: int = 256,
                   max_eval_tokens: int | None = None) -> PerplexityReport:
    """Perplexity with the transformers model (it needs every position's logits, which a serving engine does not
    return); the smoke prompts run on the serving engine (``llmship.validate.engine_check``)."""
    from llmship.validate.reuse import content_key, reuse_or_measure

    key = content_key([Path(hf_dir)], [Path(heldout_file)], code=[Path(__file__)],
                      extra=f"window={window} stride={stride} max={max_eval_tokens}")
    return reuse_or_measure(
        Path(hf_dir).parent / f"reused-perplexity-{key}.json", PerplexityReport,
        lambda: perplexity(hf_dir, Path(heldout_file).read_text(), window=window, stride=stride,
                           max_tokens=max_eval_tokens))
