"""Background processes llmship starts (``bentoml serve``, the embedded graph): spawn one detached, wait until it
answers, say why it did not, is it alive, stop it, is a port free.

One launcher for every background server: ``llmship.serving.process`` (BentoML) and
``llmship.knowledge.graphstore.server`` (ArcadeDB) differ only in their command, their readiness probe and their
state file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def spawn(cmd: Sequence[str], log_path: Path, *, env: dict[str, str], cwd: str | Path | None = None
          ) -> subprocess.Popen:
    """Run ``cmd`` detached: its own session (so its whole process group can be stopped), stdin closed, stdout and
    stderr appended to ``log_path`` after a header line naming the command."""
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.ctime()} {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, start_new_session=True)


def wait_ready(proc: subprocess.Popen, probe: Callable[[], str | None], *, wait_s: float, poll_s: float,
               exited: Callable[[int], Exception]) -> str | None:
    """Poll ``probe`` (None when ready, else why not; it may raise to give up) until it is ready or ``wait_s``
    passed; raise ``exited(returncode)`` as soon as the process dies. Returns None when ready, else the last
    reason (the caller stops the process and says it timed out)."""
    deadline = time.monotonic() + wait_s
    why: str | None = "not started"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise exited(proc.returncode)
        why = probe()
        if why is None:
            return None
        time.sleep(poll_s)
    return why


def last_error(log_path: Path, markers: Sequence[str] = ("Error", "error")) -> str:
    """The last log line that names an error (else the last line): what a one-line failure message quotes."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    for line in reversed(lines):
        if any(word in line for word in markers):
            return line[-300:]
    return lines[-1][-300:] if lines else "no output"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; our own exited child is reaped first (a zombie still answers ``kill 0``)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate_group(pid: int, timeout_s: float = 30.0, is_alive: Callable[[int], bool] = alive) -> None:
    """SIGTERM the leader ``pid`` (a clean shutdown, as Kubernetes does to PID 1), then SIGKILL its whole group
    after ``timeout_s``, or whatever of the group outlives the leader; then every descendant it had when it was
    told to stop that is still running.

    Only the leader gets the SIGTERM: it stops its own children in order. Signalling the whole group would also
    reach the chat worker's vLLM engine processes, which abort their requests at once: no drain.

    The descendants are remembered because the group is not enough: BentoML's process manager (circus) starts
    each worker in a session of its own (``os.setsid``). A worker that hangs in its shutdown hook outlives an
    arbiter that gave up on it, keeps the service's listening socket, and the next ``llmship serve`` meets its
    port in use."""
    descendants = _descendants(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # the leader if it hung, and any straggler of its group
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + timeout_s
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_survivors(descendants, grace_s=min(timeout_s, 5.0))


def _descendants(pid: int) -> list:
    """The processes under ``pid`` now (psutil handles: they know their start time, so a reused pid is not
    mistaken for one of them later)."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def kill_survivors(processes: list, grace_s: float) -> None:
    """Give ``processes`` ``grace_s`` to finish exiting on their own (the leader told them to), then SIGKILL the
    rest."""
    import psutil

    if not processes:
        return
    _, running = psutil.wait_procs(processes, timeout=grace_s)
    for proc in running:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    psutil.wait_procs(running, timeout=grace_s)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
