"""Background processes llmship starts (``bentoml serve``, the embedded graph): spawn one detached, wait until it
answers, say why it did not, is it alive, stop it, is a port free.

One launcher for every background server: ``llmship.serving.process`` (BentoML) and
``llmship.knowledge.graphstore.server`` (ArcadeDB) differ only in their command, their readiness probe and their
state file.
"""

from __future__ import annotations

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
    after ``timeout_s``, or whatever of the group outlives the leader.

    Only the leader gets the SIGTERM: it stops its own children in order. Signalling the whole group would also
    reach the chat worker's vLLM engine processes, which abort their requests at once: no drain."""
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
        return
    deadline = time.monotonic() + timeout_s
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
