"""Serve a hosted release from the chat service already running, in place: no restart, no gap.

A hosted release has no engine to start, so a deploy of one (or a rollback) only tells the chat service on
``serve.port`` to (re)load ``models:/<name>@champion`` into its table (``POST /admin/reload`` with
``{"hosted": name}``), and records the name in ``last-deploy.json``'s serve config, so that a restart of that
service (``llmship rollback``'s fallback path) serves it again.
"""

from __future__ import annotations

from typing import Any

from llmship.config import ServeConfig
from llmship.errors import ServeError
from llmship.serving import process


def serve_hosted(name: str, config: ServeConfig, timeout_s: float = 120.0) -> dict[str, Any]:
    running = process.running_on(config.port)
    if running is None:
        raise ServeError(f"no chat service runs on port {config.port} to serve the hosted release {name}: "
                         f"deploy a model there first (make deploy), or list {name} under serve.hosted")
    try:
        answer = process.reload(config.port, timeout_s=timeout_s, body={"hosted": name})
    except process.ReloadUnavailable as why:
        raise ServeError(f"the chat service on port {config.port} cannot add {name} in place ({why}); list it "
                         "under serve.hosted and redeploy") from None
    if answer.get("hosted") != name or not str(answer.get("version", "")).startswith(f"{name}/"):
        raise ServeError(f"the chat service on port {config.port} did not load {name} (it answered "
                         f"{answer.get('version')}): it predates hosted releases; redeploy it (make deploy)")
    remember(name, config.port)
    if not answer.get("key_present", True):
        raise ServeError(f"the chat service on port {config.port} serves {answer['version']} but does not see "
                         f"{answer.get('key_env')}, so its requests answer 503: export it (or put it in the ZenML "
                         "secret 'llmship') and redeploy the service")
    return answer


def hosted_key_names(names: list[str], tracking_uri: str | None = None) -> tuple[str, ...]:
    """The key variables the hosted releases ``names`` read (their champions' ``hosted_api_key_env``), for the
    deploy step to fill from the ZenML secret before it starts the service."""
    if not names:
        return ()
    from llmship.registry import ModelRegistry

    registry = ModelRegistry(tracking_uri)
    found = []
    for name in names:
        ref = registry.by_alias(name, "champion")
        key = ref.tags.get("hosted_api_key_env") if ref else None
        if key and key != "none":
            found.append(key)
    return tuple(dict.fromkeys(found))


def remember(name: str, port: int) -> None:
    """Add ``name`` to the hosted list of the deploy that started the service on ``port``."""
    deployed = process.last_deploy()
    if not deployed or deployed.get("port") != port or "serve_config" not in deployed:
        return
    hosted = list(deployed["serve_config"].get("hosted") or [])
    if name in hosted:
        return
    extras = process.deploy_extras(deployed)
    extras["serve_config"] = {**deployed["serve_config"], "hosted": [*hosted, name]}
    # the service no longer is what its deploy's config says: the next deploy restarts it rather than swapping
    # in place (llmship.serving.deploy), so what it serves is that config's again
    extras["serving_digest"] = None
    info = process.ServerInfo.model_validate({k: deployed[k] for k in process.ServerInfo.model_fields if k in deployed})
    process.write_deploy_summary(info, extras)
