"""``llmship rollback``: move ``champion`` back and serve it.

The chat Bento carries no weights: it loads ``models:/<name>@champion`` when its engine starts. So a rollback
is an alias move in the registry, then one of:

- **a swap in place** (blue/green inside the worker), when the service the last deploy started still runs and
  has one worker: ``POST /admin/reload`` starts the rolled-back version's vLLM engine beside the running one,
  new requests go to it once it is up, and the old engine stops after its last request. No request fails and
  there is no window without answers; the cost is a second engine's memory during the start-up.
- **a restart** of the same Bento (rebuilt only when the Bento store no longer has it) on the port, settings
  and gateway the last deploy used (``last-deploy.json``), when no swap is possible (several workers, the
  service is down): a window without answers as long as vLLM's start-up.

A hosted release the deployed service serves (``serve.hosted``, or added by a hosted deploy) rolls back the same
way, without an engine: the service swaps its table entry (``llmship.serving.hosted``).

The RAG service keeps running: it reaches the chat service by URL, and its answer cache is keyed by the chat
model's version, so it cannot hand out an answer of the version rolled away from.

If the rolled-back version cannot be started, the aliases go back to where they were and the version that
was serving serves again (a failed swap never stopped it; a failed restart starts it again): a failed rollback
leaves the release as it found it.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from llmship.config import ServeConfig
from llmship.errors import LlmshipError, ServeError
from llmship.registry import ModelRegistry, Rollback
from llmship.serving import process
from llmship.serving.bento import bento_exists, build_bento, chat_service_env

log = logging.getLogger(__name__)


class RollbackResult(BaseModel):
    name: str
    from_version: str
    to_version: str
    restarted: bool
    swapped: bool = False  # served in place: the running service swapped its engine (no restart, no gap)
    bento: str | None = None
    rebuilt: bool = False  # the Bento store had lost the deployed Bento, so it was built again
    url: str | None = None
    served_version: str | None = None  # x-llmship-model-version after the restart, when readable


def rollback(to: str | None = None, *, name: str | None = None, restart: bool = True,
             wait_s: float | None = None) -> RollbackResult:
    """Move ``champion`` to ``to`` (default ``previous``) and, with ``restart``, serve it where the last deploy did."""
    deployed = process.last_deploy()
    name = name or (deployed or {}).get("model_name")
    if not name:
        raise LlmshipError("nothing deployed here to roll back; name the registered model with --name")
    if restart and deployed is not None and deployed.get("model_name") == name and "serve_config" not in deployed:
        raise LlmshipError("the last deploy predates `llmship rollback`; run `make deploy` once, or pass --no-restart")
    registry = ModelRegistry((deployed or {}).get("tracking_uri"))
    moved = registry.rollback(name, to)
    result = RollbackResult(name=name, from_version=moved.from_version, to_version=moved.to_version, restarted=False)
    if not restart:
        return result
    if deployed is not None and name in (deployed.get("serve_config") or {}).get("hosted", []):
        return _swap_hosted(deployed, moved, registry, result, wait_s)
    if deployed is None or deployed.get("model_name") != name:
        raise LlmshipError(f"champion of {name!r} is now version {moved.to_version}, but no deploy of it here to "
                           "restart; restart your serving deployment (it loads @champion at start)")
    config = ServeConfig.model_validate(deployed["serve_config"])
    try:
        return _swap(deployed, config, moved, result, wait_s)
    except process.ReloadUnavailable as why:
        log.info("no swap in place (%s): restarting the service", why)
    except LlmshipError as err:  # the new engine did not start; the running one never stopped
        registry.undo_rollback(moved)
        raise ServeError(f"rollback to version {moved.to_version} failed ({err}); champion is version "
                         f"{moved.from_version} again and serving") from None
    try:
        return _restart(deployed, config, moved, registry, result, wait_s)
    except LlmshipError as err:
        registry.undo_rollback(moved)
        try:
            _serve(deployed, config, deployed["bento"], registry.tracking_uri, wait_s)
        except LlmshipError as again:
            raise ServeError(f"rollback to version {moved.to_version} failed ({err}); champion is version "
                             f"{moved.from_version} again, but restarting it failed too: {again}") from None
        raise ServeError(f"rollback to version {moved.to_version} failed ({err}); champion is version "
                         f"{moved.from_version} again and serving") from None


def _swap(deployed: dict[str, Any], config: ServeConfig, moved: Rollback, result: RollbackResult,
          wait_s: float | None) -> RollbackResult:
    """The running service serves the moved alias in place (``process.reload``)."""
    running = process.deployed_server(config.port, deployed)
    if running is None:
        raise process.ReloadUnavailable(f"the deployed service on port {config.port} is not running")
    answer = process.reload(config.port, timeout_s=wait_s if wait_s is not None else config.wait_s)
    served = answer.get("version")
    if served != f"{moved.name}/{moved.to_version}":
        raise ServeError(f"the service reloaded but serves {served}, not {moved.name}/{moved.to_version}")
    _record(deployed, running.model_copy(update={"version": served}), moved)
    return result.model_copy(update={"swapped": True, "bento": deployed.get("bento"), "url": running.url,
                                     "served_version": served})


def _swap_hosted(deployed: dict[str, Any], moved: Rollback, registry: ModelRegistry, result: RollbackResult,
                 wait_s: float | None) -> RollbackResult:
    """A hosted release the deployed service serves: its table entry is swapped (nothing to start, no gap)."""
    config = ServeConfig.model_validate(deployed["serve_config"])
    expected = f"{moved.name}/{moved.to_version}"
    try:
        answer = process.reload(config.port, timeout_s=wait_s if wait_s is not None else 120.0,
                                body={"hosted": moved.name})
        if answer.get("version") != expected:
            raise ServeError(f"the service serves {answer.get('version')}, not {expected}")
    except LlmshipError as err:
        registry.undo_rollback(moved)
        raise ServeError(f"rollback of {moved.name} to version {moved.to_version} failed ({err}); champion is "
                         f"version {moved.from_version} again and serving") from None
    return result.model_copy(update={"swapped": True, "url": config.url, "served_version": expected})


def _restart(deployed: dict[str, Any], config: ServeConfig, moved: Rollback, registry: ModelRegistry,
             result: RollbackResult, wait_s: float | None) -> RollbackResult:
    bento = deployed["bento"]
    rebuilt = not bento_exists(bento)
    if rebuilt:
        log.info("the Bento %s is gone from the store; building it again", bento)
        bento = build_bento(config.bentofile)
    info = _serve(deployed, config, bento, registry.tracking_uri, wait_s)
    if info.version is None:  # behind the gateway's keys the start-up probe cannot read it
        info.version = f"{moved.name}/{moved.to_version}"
    _record(deployed, info, moved, bento=bento)
    return result.model_copy(update={"restarted": True, "bento": bento, "rebuilt": rebuilt, "url": info.url,
                                     "served_version": info.version})


def _record(deployed: dict[str, Any], info: process.ServerInfo, moved: Rollback, **changed: Any) -> None:
    """``last-deploy.json`` again: the same deploy, now serving the rolled-back version from ``info``."""
    process.write_deploy_summary(info, {**process.deploy_extras(deployed), **changed, "model_version": moved.to_version,
                                        "previous": moved.from_version, "rolled_back_from": moved.from_version})


def _serve(deployed: dict[str, Any], config: ServeConfig, bento: str, tracking_uri: str,
           wait_s: float | None) -> process.ServerInfo:
    env = chat_service_env(config, tracking_uri)
    model_uri = f"models:/{deployed['model_name']}@{deployed.get('alias', 'champion')}"
    if not model_uri.endswith("@champion"):
        raise ServeError(f"the last deploy served {model_uri}, not the champion alias; deploy again instead")
    return process.start(bento, model_uri=model_uri, host=config.host, port=config.port, env=env,
                         wait_s=wait_s if wait_s is not None else config.wait_s)
