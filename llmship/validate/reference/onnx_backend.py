"""ONNX Runtime backend for graphs exported by ``llmship.validate.onnx_export``.

The graph takes ``input_ids``, ``attention_mask``, ``position_ids`` and one
``past_key_values.{i}.key|value`` pair per layer, and returns last-position
``logits`` plus ``present.{i}.key|value``. A zero-length past is a valid input,
so prefill and decode run through the same session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmship.errors import ExportError

MANIFEST = "llmship-onnx.json"


class OnnxBackend:
    def __init__(self, folder: str | Path, threads: int = 0, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise ExportError(f"{folder} has no {MANIFEST}; export it with llmship first")
        self.manifest = json.loads(manifest_path.read_text())
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle ORT threads spin by default, stealing the cores that the HTTP
        # event loop and tokenizer need between steps.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(folder / self.manifest["file"]), options, providers=chosen)
        except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own untyped errors
            raise ExportError(f"ONNX Runtime cannot load {folder}: {str(err).splitlines()[0]}") from None
        self.providers = self.session.get_providers()
        self.name = "onnxruntime" + ("-cuda" if "CUDAExecutionProvider" in self.providers else "")
        self.layers = int(self.manifest["num_layers"])
        self.kv_heads = int(self.manifest["num_kv_heads"])
        self.head_dim = int(self.manifest["head_dim"])
        self.output_names = [o.name for o in self.session.get_outputs()]

    def empty_past(self, batch: int) -> list[np.ndarray]:
        empty = np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=np.float32)
        return [empty] * (2 * self.layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                past: Any) -> tuple[torch.Tensor, Any]:
        feeds = {
            "input_ids": input_ids.numpy(),
            "attention_mask": attention_mask.numpy(),
            "position_ids": position_ids.numpy(),
        }
        for i in range(self.layers):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        outputs = self.session.run(None, feeds)
        logits = torch.from_numpy(outputs[0][:, -1, :])
        return logits, outputs[1:]

    # Row operations for continuous batching; past arrays are (batch, kv_heads, length, head_dim).
    def select_rows(self, past: list[np.ndarray], rows: list[int]) -> list[np.ndarray]:
        index = np.asarray(rows, dtype=np.int64)
        return [np.ascontiguousarray(a[index]) for a in past]

    def pad_left(self, past: list[np.ndarray], n: int) -> list[np.ndarray]:
        if n <= 0:
            return past
        return [np.pad(a, ((0, 0), (0, 0), (n, 0), (0, 0))) for a in past]

    def drop_left(self, past: list[np.ndarray], n: int) -> list[np.ndarray]:
        return past if n <= 0 else [np.ascontiguousarray(a[:, :, n:]) for a in past]

    def concat(self, pasts: list[list[np.ndarray]]) -> list[np.ndarray]:
        return [np.concatenate(layer, axis=0) for layer in zip(*pasts)]

