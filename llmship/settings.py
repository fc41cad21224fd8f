"""How every llmship settings model reads the environment: ``LLMSHIP_<SECTION>_<FIELD>`` variables, validated by
the model itself. One function, imported by the config, the engine, the gateway, the RAG service and the embedder,
so they all read their variables the same way. It imports no llmship subpackage, so any of them may import it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping


def env_overrides(fields: Iterable[str], prefix: str, environ: Mapping[str, str] | None = None, *,
                  skip_empty: bool = False) -> dict[str, str]:
    """``{field: $<PREFIX><FIELD>}`` for each field whose variable is set (``skip_empty``: and not empty): what
    a settings model's ``from_env`` validates, so every service reads its settings the same way."""
    env = os.environ if environ is None else environ
    return {name: env[f"{prefix}{name.upper()}"] for name in fields
            if f"{prefix}{name.upper()}" in env and (env[f"{prefix}{name.upper()}"] or not skip_empty)}
