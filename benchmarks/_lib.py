"""Helpers more than one benchmark needs (the benchmarks put the repository root on ``sys.path`` first).

Benchmarks may import ``tests.helpers`` (the load harness and the SSE reader are shared with the tests); tests never
import benchmarks."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, on ``host`` (loopback: a benchmark never serves beyond this machine)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def raise_interrupt(signum, frame) -> None:
    """A SIGTERM handler: stop the way Ctrl-C does, so a benchmark's ``finally`` stops the servers it started."""
    raise KeyboardInterrupt(f"signal {signum}")
