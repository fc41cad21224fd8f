"""A re-deploy's engine check on the running service: one vLLM start per re-deploy instead of two.

A re-deploy that the running chat service will swap in place (``llmship.serving.deploy``) used to start vLLM
twice on the same model: once in the engine check's subprocess (~50 s here, warm caches), then again in the
service for the swap. Here the check asks the service instead (``POST /admin/check``): the service starts the
candidate engine beside the one serving, the check runs on it there, and the service keeps it staged; the swap
that follows a passing check serves that engine (``bentos/chat/service.py``: the reload finds the registered
version's folder identical to the checked one, ``llmship.models.files.folder_digest``).

When: the service the last deploy started still runs on ``serve.port`` with the settings this deploy would give
it (``settings_digest``). Anything else — no service, other settings, a service with several workers, an older
service without the route — checks in a subprocess as a first deploy does. What the check measures is the same
engine either way; on the service it shares the host with the version still serving, as the subprocess did.
"""

from __future__ import annotations

import logging

from llmship.config import ServeConfig
from llmship.errors import ServeError
from llmship.serving import process
from llmship.serving.deploy import settings_digest
from llmship.validate.engine_check import EngineCheckReport, EngineCheckSpec, Runner

log = logging.getLogger(__name__)


def service_runner(name: str, config: ServeConfig, tracking_uri: str, timeout_s: float = 1800) -> Runner | None:
    """An engine check runner on the chat service a deploy of ``name`` with ``config`` would swap in place, or
    None when there is none (``llmship.validate.engine_check.run_engine_check`` then uses a subprocess)."""
    before = process.last_deploy() or {}
    running = process.deployed_server(config.port, before)
    if running is None:
        return None
    if before.get("settings_digest") != settings_digest(f"models:/{name}@champion", config, tracking_uri):
        return None

    def run(spec: EngineCheckSpec) -> EngineCheckReport | None:
        try:
            answer = process.admin_post(config.port, "check", spec.model_dump(mode="json"), timeout_s)
        except process.ReloadUnavailable as why:
            log.info("engine check in a subprocess: %s", why)
            return None
        except ServeError as err:  # the verdict comes from a subprocess: a bad candidate fails there with its line
            log.warning("the engine check on %s failed (%s): checking in a subprocess", running.url, err)
            return None
        return EngineCheckReport.model_validate(answer).model_copy(update={"where": running.url})

    return run


def discard_staged(config: ServeConfig) -> bool:
    """Stop the engine a check staged in the service on ``serve.port`` (a deploy whose gates failed, so no swap
    will take it); whether one was stopped. Never raises: the service stops it on its own after
    ``LLMSHIP_STAGED_TTL_S``."""
    try:
        return bool(process.admin_post(config.port, "discard", None, 120).get("discarded"))
    except ServeError as err:  # ReloadUnavailable included: no service of ours there, an older one
        log.info("no staged engine discarded on port %s: %s", config.port, err)
        return False
