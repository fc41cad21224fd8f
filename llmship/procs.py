"""Background processes llmship starts (``bentoml serve``, the embedded graph): is it alive, stop it, is a port free."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable


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
