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
    """SIGTERM the process group led by ``pid`` (a clean shutdown), then SIGKILL it after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not is_alive(pid):
            return


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
