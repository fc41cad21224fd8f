"""PyTorch backend: the Hugging Face model with a ``DynamicCache``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class TorchBackend:
    """Runs a transformers causal LM one step at a time.

    The cache is a plain ``DynamicCache`` without the model config, so every
    layer keeps its full history; sliding-window layers still attend only to
    their window because transformers builds the window into the attention
    mask. That is exactly the contract the ONNX export traces, which is what
    makes the two comparable token for token.
    """

    def __init__(self, model: Any, name: str = "pytorch") -> None:
        self.model = model.eval()
        self.name = name
        self.device = next(model.parameters()).device

    @classmethod
    def from_folder(cls, folder: str | Path, dtype: str = "float32", device: str = "cpu",
                    attn_implementation: str = "sdpa") -> TorchBackend:
        from transformers import AutoModelForCausalLM

        if dtype == "float32" and device == "cpu":
            # oneDNN builds a new fp32 kernel for every new KV length, i.e. every
            # decode step: measured 1.7 s TTFT and 4 tok/s with it, 0.12 s and
            # 10 tok/s without (gemma-3-270m, 2 cores). bf16 does not use it.
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # torch types the flag as its descriptor
        model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=getattr(torch, dtype), attn_implementation=attn_implementation
        )
        model = model.to(device)
        return cls(model, name=f"pytorch-{dtype}" + ("" if device == "cpu" else f"-{device}"))

    def empty_past(self, batch: int) -> Any:
        from transformers import DynamicCache

        return DynamicCache()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                past: Any) -> tuple[torch.Tensor, Any]:
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            position_ids=position_ids.to(self.device),
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float().cpu(), out.past_key_values

    # Row operations for continuous batching, on the cache's (batch, kv_heads, length, head_dim) tensors.
    @staticmethod
    def _tensors(past: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.keys, layer.values) for layer in past.layers]

    @staticmethod
    def _cache(tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (k, v) in enumerate(tensors):
            cache.update(k, v, i)
        return cache

    def select_rows(self, past: Any, rows: list[int]) -> Any:
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        return self._cache([(k.index_select(0, index), v.index_select(0, index)) for k, v in self._tensors(past)])

    def pad_left(self, past: Any, n: int) -> Any:
        if n <= 0:
            return past
        pad = torch.nn.functional.pad
        return self._cache([(pad(k, (0, 0, n, 0)), pad(v, (0, 0, n, 0))) for k, v in self._tensors(past)])

    def drop_left(self, past: Any, n: int) -> Any:
        if n <= 0:
            return past
        return self._cache([(k[:, :, n:].contiguous(), v[:, :, n:].contiguous()) for k, v in self._tensors(past)])

    def concat(self, pasts: list[Any]) -> Any:
        layers = zip(*(self._tensors(p) for p in pasts))
        return self._cache([(torch.cat([k for k, _ in kv]), torch.cat([v for _, v in kv])) for kv in layers])

