"""Quality gates' measurements: perplexity on shipped held-out text, chat smoke prompts."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel

from llmship.engine.base import Engine, SamplingParams


class PerplexityReport(BaseModel):
    tokens: int
    perplexity: float
    window: int
    stride: int
    seconds: float


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


def smoke(engine: Engine, prompts: list[dict[str, Any]], max_tokens: int = 24) -> SmokeReport:
    """Each chat prompt, through the chat template, must yield non-empty text."""
    encoded = [engine.apply_chat_template(p["messages"]) for p in prompts]
    outs = engine.generate(encoded, SamplingParams(max_tokens=max_tokens, temperature=0.0))
    results = [
        SmokeResult(id=p["id"], text=o.text, completion_tokens=o.completion_tokens, finish_reason=o.finish_reason,
                    ok=bool(o.text.strip()))
        for p, o in zip(prompts, outs)
    ]
    return SmokeReport(results=results, pass_rate=sum(r.ok for r in results) / max(len(results), 1))


def run_evaluation(hf_dir: str | Path, onnx_dir: str | Path | None, heldout_file: str | Path, smoke_file: str | Path,
                   window: int = 512, stride: int = 256, max_eval_tokens: int | None = None,
                   smoke_max_tokens: int = 24) -> tuple[PerplexityReport, SmokeReport]:
    """Perplexity with PyTorch (needs every position's logits); smoke prompts on every engine that may serve.

    Which backend serves is decided later from the benchmark, so both must
    pass: the report keeps the worse pass rate (and the failing backend's answers).
    """
    from llmship.engine.loader import load_engine

    ppl = perplexity(hf_dir, Path(heldout_file).read_text(), window=window, stride=stride, max_tokens=max_eval_tokens)
    prompts = load_prompts(smoke_file)
    report = smoke(load_engine(hf_dir, "pytorch", dtype="bfloat16"), prompts, max_tokens=smoke_max_tokens)
    if onnx_dir:
        onnx_report = smoke(load_engine(hf_dir, "onnx", onnx_dir=onnx_dir), prompts, max_tokens=smoke_max_tokens)
        report = min(report, onnx_report, key=lambda r: r.pass_rate)
    return ppl, report
