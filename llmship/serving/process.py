"""Start, find and stop the background ``bentoml serve`` process.

A small JSON state file per port under ``LLMSHIP_HOME/serve`` records what we
started, so ``deploy`` can replace its own server cleanly while refusing to
touch a port that something else owns. Next to it, readable by this user only,
the server's admin token: what ``reload`` sends to swap the served model in
place (``POST /admin/reload``).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from llmship import paths, procs
from llmship.errors import ServeError
from llmship.openai.admin import ADMIN_TOKEN_ENV, ADMIN_TOKEN_HEADER


class ServerInfo(BaseModel):
    pid: int
    host: str
    port: int
    target: str
    model_uri: str
    log: str
    started_at: float
    version: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _state_file(port: int) -> Path:
    return paths.sub("serve") / f"{port}.json"


def _token_file(port: int) -> Path:
    return paths.sub("serve") / f"{port}.admin-token"


def _write_token(port: int) -> str:
    token = secrets.token_urlsafe(32)
    path = _token_file(port)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return token


_alive = procs.alive
port_in_use = procs.port_in_use


def bentoml_executable() -> str:
    candidate = Path(sys.executable).parent / "bentoml"
    return str(candidate) if candidate.exists() else "bentoml"


KEEP_ALIVE_S = 75


def keep_alive_s(env: dict[str, str]) -> int:
    """How long the server keeps an idle HTTP/1.1 connection: ``LLMSHIP_HTTP_KEEP_ALIVE_S``, 75 s by default.

    uvicorn's default is 5 s, the same as httpx's client-side expiry, so a client that reuses a connection after
    about 5 s idle (waiting out a ``Retry-After``, say) can meet the server's close in flight: a ``ReadError``
    no retry policy should have to absorb. The server must outlast its clients and the load balancers in front
    of it (nginx 75 s, AWS ALB 60 s): then the client side always closes first.
    """
    raw = env.get("LLMSHIP_HTTP_KEEP_ALIVE_S", str(KEEP_ALIVE_S))
    try:
        value = int(raw)
    except ValueError:
        raise ServeError(f"LLMSHIP_HTTP_KEEP_ALIVE_S must be a whole number of seconds, got {raw!r}") from None
    if value < 1:
        raise ServeError(f"LLMSHIP_HTTP_KEEP_ALIVE_S must be at least 1, got {value}")
    return value


def start(target: str, *, model_uri: str, host: str = "127.0.0.1", port: int = 3000,
          env: dict[str, str] | None = None, wait_s: float = 300.0, cwd: str | Path | None = None) -> ServerInfo:
    """Run ``bentoml serve TARGET`` detached and wait until it answers ``/readyz`` and ``/v1/models``."""
    keep_alive = keep_alive_s({**os.environ, **(env or {})})  # a bad setting stops nothing that runs
    stop(port)  # our own earlier server on this port: replace it
    if port_in_use(host, port):
        raise ServeError(f"port {port} on {host} is in use by another process; stop it or set serve.port")
    log_path = paths.sub("logs") / f"serve-{port}.log"
    full_env = {**os.environ, **(env or {}), "LLMSHIP_MODEL_URI": model_uri, ADMIN_TOKEN_ENV: _write_token(port)}
    cmd = [bentoml_executable(), "serve", target, "--host", host, "--port", str(port),
           "--timeout-keep-alive", str(keep_alive)]
    proc = procs.spawn(cmd, log_path, env=full_env, cwd=cwd)
    info = ServerInfo(pid=proc.pid, host=host, port=port, target=target, model_uri=model_uri, log=str(log_path),
                      started_at=time.time())
    _state_file(port).write_text(info.model_dump_json())
    offset = log_path.stat().st_size

    def probe() -> str | None:
        refused = _startup_refusal(log_path, offset)
        if refused is not None:  # BentoML would restart the worker forever; the engine already said why
            stop(port)
            raise ServeError(f"{refused} (log: {log_path})")
        try:
            ready = httpx.get(f"{info.url}/readyz", timeout=2.0)
            if ready.status_code != 200:
                return f"/readyz is {ready.status_code}"
            models = httpx.get(f"{info.url}/v1/models", timeout=5.0)
        except httpx.HTTPError as err:
            return str(err)
        if models.status_code not in (200, 401):  # 401: it answers, behind the gateway's keys
            return f"/v1/models is {models.status_code}"
        info.version = models.headers.get("x-llmship-model-version")
        return None

    def exited(code: int) -> ServeError:
        _state_file(port).unlink(missing_ok=True)
        refused = _startup_refusal(log_path, offset)  # the engine's own one line, when it wrote one
        if refused is not None:
            return ServeError(f"{refused} (log: {log_path})")
        return ServeError(f"bentoml serve exited with code {code}: {procs.last_error(log_path)} (log: {log_path})")

    if procs.wait_ready(proc, probe, wait_s=wait_s, poll_s=1.0, exited=exited) is None:
        _state_file(port).write_text(info.model_dump_json())
        return info
    stop(port)
    raise ServeError(f"the server on port {port} was not ready within {wait_s:.0f}s (log: {log_path})")


def _startup_refusal(log_path: Path, offset: int) -> str | None:
    """The one line a worker's failed start-up wrote (``llmship.errors.ServeError: ...``), if any since ``offset``."""
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        marker = "llmship.errors.ServeError: "
        if marker in line:
            return line.split(marker, 1)[1].strip()[:600]
    return None


def status() -> list[ServerInfo]:
    """Servers we started that are still alive (stale state files are removed)."""
    found = []
    for file in sorted(paths.sub("serve").glob("*.json")):
        info = ServerInfo.model_validate_json(file.read_text())
        if _alive(info.pid):
            found.append(info)
        else:
            file.unlink(missing_ok=True)
    return found


def running_on(port: int) -> ServerInfo | None:
    """Our server on ``port``, if it is alive."""
    return next((i for i in status() if i.port == port), None)


def deployed_server(port: int, summary: dict[str, Any] | None = None) -> ServerInfo | None:
    """The server the last deploy started (``summary``, default ``last-deploy.json``), if it still runs on ``port``:
    the one a re-deploy, a rollback or an engine check may ask to change in place."""
    summary = last_deploy() if summary is None else summary
    running = running_on(port)
    return running if running is not None and summary and running.pid == summary.get("pid") else None


def stop(port: int | None = None, timeout_s: float = 30.0) -> list[ServerInfo]:
    """Stop our server on ``port`` (or all of them): SIGTERM the group, then SIGKILL."""
    stopped = []
    for info in status():
        if port is not None and info.port != port:
            continue
        procs.terminate_group(info.pid, timeout_s)
        _state_file(info.port).unlink(missing_ok=True)
        _token_file(info.port).unlink(missing_ok=True)
        stopped.append(info)
    return stopped


class ReloadUnavailable(ServeError):
    """The running server cannot swap its model in place (several workers, an older server, not ours)."""


def reload(port: int, timeout_s: float = 600.0, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask our server on ``port`` to serve what its alias names now, in place (``POST /admin/reload``): a new
    engine starts beside the running one and takes over when ready, so no request fails and there is no window
    without answers. Returns ``{"version", "previous", "swapped", "engine_start_s"}``. Raises
    ``ReloadUnavailable`` when the server cannot (then restart it), ``ServeError`` when the new engine failed to
    start (the running one still serves). With ``body={"hosted": name}`` the hosted release ``name`` is served
    at what its champion alias names now instead (``llmship.hosted``)."""
    return admin_post(port, "reload", body, timeout_s)


def admin_post(port: int, route: str, body: Any, timeout_s: float) -> dict[str, Any]:
    """``POST /admin/<route>`` on our server on ``port`` with its admin token: the JSON answer. A server that
    cannot (none of ours there, no token, several workers, an older server without the route: 404/409) is
    ``ReloadUnavailable``; any other failure ``ServeError``, with the server's own message."""
    info = running_on(port)
    token_path = _token_file(port)
    if info is None or not token_path.exists():
        raise ReloadUnavailable(f"no server of ours with an admin token runs on port {port}")
    try:
        resp = httpx.post(f"{info.url}/admin/{route}", headers={ADMIN_TOKEN_HEADER: token_path.read_text().strip()},
                          json=body, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise ServeError(f"{route} on port {port} did not answer: {err}") from None
    if resp.status_code == 200:
        return resp.json()
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = resp.text[:300]
    if resp.status_code in (404, 409):
        raise ReloadUnavailable(f"the server on port {port} cannot {route} in place: {message}")
    raise ServeError(f"the server on port {port} could not {route}: {message}")


def deploy_summary_path() -> Path:
    """``last-deploy.json``: what the last deploy started (server, Bento, model, serve config), for ``llmship serve
    info``, ``status`` and ``rollback``."""
    return paths.home() / "last-deploy.json"


def last_deploy() -> dict[str, Any] | None:
    path = deploy_summary_path()
    return json.loads(path.read_text()) if path.exists() else None


def deploy_extras(summary: dict[str, Any]) -> dict[str, Any]:
    """What a deploy summary holds beside its server's own fields (Bento, model, aliases, serve config): what to
    carry over when the summary is written again for another server or version."""
    return {k: v for k, v in summary.items() if k not in ServerInfo.model_fields and k != "url"}


def write_deploy_summary(info: ServerInfo, extra: dict) -> Path:
    path = deploy_summary_path()
    path.write_text(json.dumps({**json.loads(info.model_dump_json()), "url": info.url, **extra}, indent=2))
    return path
