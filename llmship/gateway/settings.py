"""The gateway's settings: ``LLMSHIP_GATEWAY_<FIELD>`` (lists comma-separated), or ``serve.gateway`` in the
deploy config, which ``deploy`` turns into the same variables for both services.

Secrets never live here: keys are in the key store (hashed), and an upstream's key comes from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmship import paths
from llmship.gateway.keys import default_path
from llmship.settings import env_overrides

PREFIX = "LLMSHIP_GATEWAY_"


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: bool = False  # require "Authorization: Bearer <key>" (like vLLM's --api-key, but per-key)
    keys_db: str | None = None  # default: $LLMSHIP_HOME/gateway/keys.db
    public_metrics: bool = False  # /metrics without a key (a Prometheus scraper inside the cluster)
    docs: bool = True  # the OpenAPI schema and docs UI exist at all
    public_docs: bool = False  # ... and are readable without a key
    cors_origins: list[str] = Field(default_factory=list)  # empty: no CORS headers (browsers refuse cross-origin)
    limits_storage: str = "memory://"  # the `limits` storage URI; redis://... shares limits across replicas
    max_messages: int = Field(default=256, ge=1)
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    default_max_tokens: int = Field(default=256, ge=1)  # reserved for a request that names no max_tokens
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    audit: bool = True
    audit_path: str | None = None  # default: $LLMSHIP_HOME/gateway/audit.jsonl
    audit_prompts: bool = False  # the prompt in the audit line: off unless you must keep it

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> GatewaySettings:
        env = os.environ if environ is None else environ
        data = env_overrides(cls.model_fields, PREFIX, env, skip_empty=True)
        if "max_body_bytes" not in data and env.get("LLMSHIP_MAX_BODY_BYTES"):
            data["max_body_bytes"] = env["LLMSHIP_MAX_BODY_BYTES"]  # the service's own body limit, one knob
        return cls.model_validate(data)

    def env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a serving process (only what differs from default)."""
        out = {}
        for name, value in self.model_dump(exclude_defaults=True).items():
            text = ",".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) \
                else str(value)
            out[f"{PREFIX}{name.upper()}"] = text
        return out

    def keys_path(self) -> Path:
        return Path(self.keys_db) if self.keys_db else default_path()

    def audit_file(self) -> Path:
        return Path(self.audit_path) if self.audit_path else paths.sub("gateway") / "audit.jsonl"
