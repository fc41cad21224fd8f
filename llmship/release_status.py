"""``llmship status``: the release as an operator sees it — registry aliases with their gate verdicts, and what
each running service actually serves (read from the service, not assumed from the registry)."""

from __future__ import annotations

import os

import httpx
from pydantic import BaseModel

from llmship.errors import LlmshipError
from llmship.registry import ModelRegistry, ModelVersionRef
from llmship.serving import process

KEY_METRICS = ("perplexity", "parity_max_abs_logit_diff", "parity_top1_agreement", "decode_tok_s", "ttft_s")
ALIAS_ORDER = ("champion", "previous", "challenger")


class Gate(BaseModel):
    name: str
    value: float | None
    threshold: float
    op: str
    passed: bool
    skipped: str | None = None


class VersionStatus(BaseModel):
    version: str
    aliases: list[str]
    validation_status: str | None
    serve_backend: str | None
    source: str | None
    git_commit: str | None
    metrics: dict[str, float]
    gates: list[Gate]
    rolled_back_at: str | None = None


class ServiceStatus(BaseModel):
    kind: str  # "chat" | "rag"
    url: str
    pid: int
    serves: str | None  # x-llmship-model-version of a chat service; the chat URL a RAG service answers with
    alias: str | None = None  # the alias naming that version now (a chat service that lags a rollback shows it)
    error: str | None = None


class ReleaseStatus(BaseModel):
    name: str
    versions: list[VersionStatus]
    services: list[ServiceStatus]


def release_status(name: str, *, every_version: bool = False, registry: ModelRegistry | None = None) -> ReleaseStatus:
    registry = registry or ModelRegistry()
    refs = registry.versions(name)
    if not refs:
        raise LlmshipError(f"no registered versions of {name!r}; run `make deploy`")
    shown = [ref for ref in refs if ref.aliases or every_version]
    shown.sort(key=lambda r: (min((ALIAS_ORDER.index(a) for a in r.aliases if a in ALIAS_ORDER), default=9),
                              -int(r.version)))
    versions = [_version(registry, ref) for ref in shown]
    aliases = {f"{name}/{ref.version}": ",".join(ref.aliases) for ref in refs if ref.aliases}
    return ReleaseStatus(name=name, versions=versions, services=services(aliases))


def _version(registry: ModelRegistry, ref: ModelVersionRef) -> VersionStatus:
    metrics = registry.metrics(ref)
    return VersionStatus(
        version=ref.version, aliases=ref.aliases, validation_status=ref.tags.get("validation_status"),
        serve_backend=ref.tags.get("serve_backend"), source=ref.tags.get("model_source"),
        git_commit=ref.tags.get("git_commit"), rolled_back_at=ref.tags.get("rolled_back_at"),
        metrics={k: round(metrics[k], 5) for k in KEY_METRICS if k in metrics},
        gates=[Gate.model_validate(g) for g in registry.gate_results(ref)])


def services(aliases: dict[str, str] | None = None) -> list[ServiceStatus]:
    """The servers llmship started here, each asked what it serves."""
    found = []
    for info in process.status():
        kind = "rag" if "rag" in info.target else "chat"
        status = ServiceStatus(kind=kind, url=info.url, pid=info.pid, serves=None)
        if kind == "rag":
            status.serves = _rag_upstream(info)
        else:
            status.serves, status.error = _served_version(info.url)
            status.alias = (aliases or {}).get(status.serves or "")
        found.append(status)
    return found


def _rag_upstream(info: process.ServerInfo) -> str | None:
    """A RAG service answers with the chat service of the same deploy (``last-deploy.json``)."""
    deployed = process.last_deploy() or {}
    if deployed.get("rag_url") == info.url:
        return f"{deployed['url']}/v1"
    return None


def _served_version(url: str) -> tuple[str | None, str | None]:
    key = os.environ.get("LLMSHIP_API_KEY")
    try:
        resp = httpx.get(f"{url}/v1/models", timeout=5.0, headers={"Authorization": f"Bearer {key}"} if key else None)
    except httpx.HTTPError as err:
        return None, f"unreachable: {err}"
    if resp.status_code == 401:
        return None, "needs a key (set LLMSHIP_API_KEY)"
    if resp.status_code != 200:
        return None, f"/v1/models answered {resp.status_code}"
    return resp.headers.get("x-llmship-model-version"), None
