"""Export a causal LM to ONNX **with KV cache**, in the project's own environment.

The path, and why (measured 2026-11 on transformers 5.23 / torch 2.13):

- ``optimum-onnx`` only supports transformers < 4.58, whose GGUF loader gives
  wrong text for Gemma-3; ``onnxruntime-genai``'s builder fails on transformers
  5's ``rope_parameters``. Neither fits one environment with transformers 5.
- ``torch.onnx.export(dynamo=True)`` of the plain forward works but without a
  cache every token re-reads the whole sequence (6 tok/s).
- What works: wrap the model in a module whose inputs are ``input_ids``,
  ``attention_mask``, ``position_ids`` and the past keys/values as *flat
  tensors*, rebuild a ``DynamicCache`` inside ``forward``, and return the
  last-position logits plus the present keys/values. ``torch.export`` traces the
  cache updates and transformers' mask construction (sliding windows included)
  with symbolic batch, sequence and past lengths, so one graph serves prefill
  (a zero-length past) and decode. Only the last position's logits are
  returned: full-sequence logits for a 262k vocabulary would cost 1 MB a token.

The export is cached by the built model's identity (it takes about a minute).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from pydantic import BaseModel

from llmship import paths
from llmship.errors import ExportError
from llmship.validate.reference.onnx_backend import MANIFEST

log = logging.getLogger(__name__)
EXPORTER_VERSION = "kv-dynamo-1"


class OnnxExport(BaseModel):
    """Where an export lives and what the runtime needs to feed it."""

    path: str
    file: str = "model.onnx"
    num_layers: int
    num_kv_heads: int
    head_dim: int
    opset: int
    size_bytes: int
    export_seconds: float
    cached: bool = False


def _text_config(config):
    return getattr(config, "text_config", None) or config


def export_onnx(hf_dir: str | Path, out_dir: str | Path, opset: int = 18) -> OnnxExport:
    """Export ``hf_dir`` to ``out_dir`` (``model.onnx`` + external data + manifest)."""
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST
    if manifest_path.exists():
        cached = OnnxExport.model_validate_json(manifest_path.read_text())
        if cached.opset == opset and json.loads(manifest_path.read_text()).get("exporter") == EXPORTER_VERSION:
            return cached.model_copy(update={"cached": True, "path": str(out_dir)})
    started = time.perf_counter()
    weights = sum(p.stat().st_size for p in Path(hf_dir).glob("*.safetensors"))
    # fp32 export of (usually) 16-bit weights: 2x, plus the graph and slack
    paths.ensure_free_space(out_dir.parent, int(2.5 * weights), f"the ONNX export of {hf_dir}")
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="sdpa").eval()
    except Exception as err:  # noqa: BLE001 - reported as an ExportError with its first line
        raise ExportError(f"cannot load {hf_dir} for export: {str(err).splitlines()[0]}") from None
    cfg = _text_config(model.config)
    layers = int(cfg.num_hidden_layers)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    wrapper = _KVWrapper(model, layers).eval()

    batch, seq, past_len = 2, 3, 4  # example sizes; all three become symbolic
    ids = torch.randint(0, min(1000, cfg.vocab_size), (batch, seq))
    mask = torch.ones(batch, past_len + seq, dtype=torch.long)
    pos = torch.arange(past_len, past_len + seq).expand(batch, seq).contiguous()
    past = [torch.randn(batch, kv_heads, past_len, head_dim) for _ in range(2 * layers)]
    dyn = torch.export.Dim.DYNAMIC
    shapes = {
        "input_ids": {0: dyn, 1: dyn},
        "attention_mask": {0: dyn, 1: dyn},
        "position_ids": {0: dyn, 1: dyn},
        "past": [{0: dyn, 2: dyn} for _ in range(2 * layers)],
    }
    inputs = ["input_ids", "attention_mask", "position_ids"] + [
        f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")
    ]
    outputs = ["logits"] + [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                wrapper, (ids, mask, pos, past), None, dynamo=True, dynamic_shapes=shapes,
                input_names=inputs, output_names=outputs, opset_version=opset, verbose=False,
            )
        assert program is not None  # dynamo=True without a file returns the program
        program.save(str(tmp / "model.onnx"), external_data=True)
        size = sum(p.stat().st_size for p in tmp.iterdir())
        result = OnnxExport(
            path=str(out_dir), num_layers=layers, num_kv_heads=kv_heads, head_dim=head_dim, opset=opset,
            size_bytes=size, export_seconds=round(time.perf_counter() - started, 2),
        )
        (tmp / MANIFEST).write_text(json.dumps({**result.model_dump(), "exporter": EXPORTER_VERSION,
                                                "torch": torch.__version__}, indent=2))
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
    except ExportError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as err:  # noqa: BLE001 - the exporter fails in many ways: clean up, report one line
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"ONNX export of {hf_dir} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    return result


class _KVWrapper(torch.nn.Module):
    """Flat-tensor KV interface around a transformers model, traceable by torch.export."""

    def __init__(self, model, layers: int) -> None:
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, past):
        from transformers import DynamicCache

        cache = DynamicCache()
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)
