"""Secrets for steps: the environment first, else the ZenML secret ``llmship`` (``LLMSHIP_ZENML_SECRET``).

Config files never hold a secret. A step that needs one (a Hub token to build a gated model, the production
graph's password, the RAG service's key for an upstream chat model) calls ``load_secrets()`` first: each known
name missing from the environment is taken from the ZenML secret, so one ``zenml secret create llmship
--NEO4J_PASSWORD=… --HF_TOKEN=…`` serves every orchestrator the stack runs on. The core library never imports
ZenML; the services inherit what the step put in its environment.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

KNOWN = ("HF_TOKEN", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "LLMSHIP_RAG_CHAT_API_KEY", "LLMSHIP_API_KEY")


def load_secrets(environ: MutableMapping[str, str] | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """Fill the known names (and ``extra``: a hosted model's ``build.api_key_env``) missing from ``environ`` from
    the ZenML secret; returns the names it filled (never the values)."""
    env = os.environ if environ is None else environ
    missing = [name for name in (*KNOWN, *extra) if name and not env.get(name)]
    if not missing:
        return []
    from zenml.client import Client

    name = env.get("LLMSHIP_ZENML_SECRET", "llmship")
    try:
        values = Client().get_secret(name, allow_partial_name_match=False).secret_values
    except KeyError:
        return []  # no such secret: the environment is all there is
    filled = []
    for key in missing:
        value = values.get(key) or values.get(key.lower())
        if value:
            env[key] = value
            filled.append(key)
    return filled
