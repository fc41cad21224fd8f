"""Serve a release: the chat service (and the RAG service beside it) on the champion, replacing what runs.

A re-deploy whose service would be identical but for the model version — the same Bento content, settings,
registry and port — swaps the engine in place (``POST /admin/reload``, as ``llmship rollback`` does): the new
version's vLLM starts beside the running one and takes over when ready, so the re-deploy has no window without
answers, does not restart the RAG service, and skips a process start. Where the deploy's engine check ran in that
service (``llmship.serving.staging``), the engine it checked is the one swapped in: no engine starts at all. Anything else (new code, new settings, the
service is down or runs several workers) restarts the service, as a first deploy starts it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from pydantic import BaseModel

from llmship.config import ServeConfig
from llmship.errors import ServeError
from llmship.registry import Promotion
from llmship.serving import process
from llmship.serving.bento import bentoml_env, chat_service_env
from llmship.serving.rag import rag_env, start_rag

log = logging.getLogger(__name__)


class Deployed(BaseModel):
    chat: process.ServerInfo
    rag: process.ServerInfo | None = None
    swapped: bool = False  # the running service swapped its engine in place (no restart)
    staged: bool = False  # ... to the engine the deploy's check ran on in that service (no second engine start)
    summary: Path


def bento_digest(tag: str) -> str | None:
    """A digest of a Bento's content (its source, environment and API files; not ``bento.yaml``, which holds the
    tag and the build time): two builds of the same code and config have the same digest."""
    name, _, version = tag.partition(":")
    home = Path(bentoml_env()["BENTOML_HOME"])
    folder = home / "bentos" / name / version
    if not version or not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.relative_to(folder).as_posix() != "bento.yaml":
            digest.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def settings_digest(model_uri: str, config: ServeConfig, tracking_uri: str) -> str:
    """The service's settings, but for its code: model URI, registry, address and every setting the service
    reads. Known before the Bento is built (``llmship.serving.staging`` asks it of an engine check)."""
    settings = {"model_uri": model_uri, "tracking_uri": tracking_uri, "host": config.host, "port": config.port,
                "env": config.chat_env(), "rag": config.rag, "rag_port": config.rag_port}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def serving_digest(bento: str, model_uri: str, config: ServeConfig, tracking_uri: str) -> str | None:
    """What the running service is, but for the model version its alias names: Bento content and
    ``settings_digest``."""
    content = bento_digest(bento)
    if content is None:
        return None
    both = {"bento": content, "settings": settings_digest(model_uri, config, tracking_uri)}
    return hashlib.sha256(json.dumps(both, sort_keys=True).encode()).hexdigest()


def deploy_release(bento: str, name: str, promotion: Promotion, config: ServeConfig, tracking_uri: str) -> Deployed:
    model_uri = f"models:/{name}@champion"
    digest = serving_digest(bento, model_uri, config, tracking_uri)
    before = process.last_deploy() or {}
    running = process.deployed_server(config.port, before)
    chat, swapped, staged = None, False, False
    if digest and running and before.get("serving_digest") == digest:
        try:
            answer = process.reload(config.port, timeout_s=config.wait_s)
            chat = running.model_copy(update={"version": answer.get("version")})
            swapped, staged = True, bool(answer.get("staged"))
            log.info("swapped %s in place (%s -> %s%s)", config.url, answer.get("previous"), answer.get("version"),
                     "; the engine the check ran on" if staged else "")
        except process.ReloadUnavailable as why:
            log.info("no swap in place (%s): restarting the service", why)
    if chat is None:
        chat = process.start(bento, model_uri=model_uri, host=config.host, port=config.port,
                             env=chat_service_env(config, tracking_uri), wait_s=config.wait_s)
    served = promotion.version if promotion.status == "champion" else promotion.previous_champion
    if chat.version is None and served:  # behind the gateway's keys the start-up probe cannot read it
        chat.version = f"{name}/{served}"
    rag = None
    if config.rag:
        kept = process.running_on(config.rag_port) if swapped else None
        rag = kept or start_rag(f"{chat.url}/v1", model_uri=model_uri, host=config.host, port=config.rag_port,
                                wait_s=config.wait_s, env=rag_env(config, name))
    summary = process.write_deploy_summary(chat, {
        "bento": bento, "model_name": name, "model_version": promotion.version, "alias": "champion",
        "previous": promotion.previous_champion, "rag_url": rag.url if rag else None,
        # what `llmship rollback` needs to restart the same service on another version
        "tracking_uri": tracking_uri, "serve_config": config.model_dump(mode="json"),
        "serving_digest": digest, "settings_digest": settings_digest(model_uri, config, tracking_uri),
        "swapped": swapped, "staged": staged})
    if chat.version and served and chat.version != f"{name}/{served}":
        raise ServeError(f"the service on {config.url} serves {chat.version}, not {name}/{served}")
    return Deployed(chat=chat, rag=rag, swapped=swapped, staged=staged, summary=summary)

