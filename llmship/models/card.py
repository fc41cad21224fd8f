"""The model card registered with every version: what it is, where it came from, how it measured."""

from __future__ import annotations

from typing import Any

from llmship.models.build import BuiltModel


def model_card(name: str, built: BuiltModel, metrics: dict[str, float], lineage: dict[str, str],
               gates: list[str] | None = None) -> str:
    lines = [
        f"# {name}",
        "",
        "Released with llmship.",
        "",
        "## Model",
        f"- source: `{built.source}` (identity `{built.identity[:16]}`)",
        (f"- architecture: `{built.model_type}`, {built.num_parameters / 1e6:.1f}M parameters, "
         f"{built.max_position_embeddings} positions"),
        f"- weights: {built.dtype}{' (dequantised from GGUF)' if built.from_gguf else ''}",
        f"- chat template: {built.chat_template}",
        "",
        "## Lineage",
        *[f"- {k}: `{v}`" for k, v in sorted(lineage.items())],
        "",
        "## Measurements",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items())],
    ]
    if gates:
        lines += ["", "## Gates", *[f"- {g}" for g in gates]]
    if built.model_type.startswith("gemma"):
        lines += ["", "## License", "Gemma weights are provided under the Gemma Terms of Use."]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
