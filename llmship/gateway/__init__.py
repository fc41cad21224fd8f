"""The gateway in front of the chat and RAG services: API keys, per-key limits, request caps, audit, CORS.

``Gateway`` (the middleware, with Starlette and ``limits`` behind it) is imported on first use, so the config
models can hold a ``GatewaySettings`` without pulling the serving stack in.
"""

from typing import Any

from llmship.gateway.keys import ApiKey, KeyStore
from llmship.gateway.settings import GatewaySettings
from llmship.gateway.usage import report_usage

__all__ = ["ApiKey", "Gateway", "GatewaySettings", "KeyStore", "report_usage"]


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from llmship.gateway.middleware import Gateway

        return Gateway
    raise AttributeError(name)
