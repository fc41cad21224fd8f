"""``llmship.procs``: the one launcher behind ``bentoml serve`` and the embedded graph, on real child processes."""

from __future__ import annotations

import os
import sys

import pytest

from llmship import procs
from tests.helpers.procs import gone


def test_a_spawned_process_is_waited_for_until_its_probe_says_ready_then_stopped(tmp_path):
    ready_file, log = tmp_path / "ready", tmp_path / "child.log"
    code = f"import pathlib, time; print('starting', flush=True); pathlib.Path({str(ready_file)!r}).touch(); time.sleep(60)"
    proc = procs.spawn([sys.executable, "-c", code], log, env=dict(os.environ))
    try:
        why = procs.wait_ready(proc, lambda: None if ready_file.exists() else "no file yet", wait_s=30, poll_s=0.05,
                               exited=lambda rc: AssertionError(f"exited {rc}"))
        assert why is None and procs.alive(proc.pid)
        assert os.getpgid(proc.pid) == proc.pid  # its own session: the group can be stopped whole
    finally:
        procs.terminate_group(proc.pid, timeout_s=5)
    assert not procs.alive(proc.pid)
    text = log.read_text()
    assert text.startswith("\n==== ") and sys.executable in text.splitlines()[1] and "starting" in text


def test_an_exit_before_ready_raises_with_the_logs_last_error(tmp_path):
    log = tmp_path / "child.log"
    code = "import sys; print('loading'); print('ValueError: port 1 is not allowed'); print('bye'); sys.exit(3)"
    proc = procs.spawn([sys.executable, "-c", code], log, env=dict(os.environ))
    with pytest.raises(RuntimeError, match=r"code 3: ValueError: port 1 is not allowed"):
        procs.wait_ready(proc, lambda: "never", wait_s=30, poll_s=0.05,
                         exited=lambda rc: RuntimeError(f"code {rc}: {procs.last_error(log)}"))


def test_a_probe_that_never_passes_returns_its_last_reason(tmp_path):
    proc = procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "x.log", env=dict(os.environ))
    try:
        assert procs.wait_ready(proc, lambda: "still warming up", wait_s=0.3, poll_s=0.05,
                                exited=lambda rc: AssertionError(rc)) == "still warming up"
    finally:
        procs.terminate_group(proc.pid, timeout_s=5)


LEADER = """
import os, signal, subprocess, sys, time
# a worker in a session of its own, as BentoML's process manager (circus) starts them, that ignores SIGTERM
worker = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                           "print('worker up', flush=True); time.sleep(120)"], start_new_session=True)
print(worker.pid, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the leader gives up on its worker and leaves
time.sleep(120)
"""




def test_a_worker_in_its_own_session_does_not_outlive_the_stop(tmp_path):
    log = tmp_path / "leader.log"
    proc = procs.spawn([sys.executable, "-c", LEADER], log, env=dict(os.environ))
    try:
        def both_up() -> str | None:  # the worker's line and the leader's (its pid), in either order
            lines = log.read_text().splitlines()
            return None if "worker up" in lines and any(ln.isdigit() for ln in lines) else "not yet"

        why = procs.wait_ready(proc, both_up, wait_s=30,
                               poll_s=0.05, exited=lambda rc: AssertionError(f"exited {rc}: {log.read_text()}"))
        assert why is None
        lines = log.read_text().splitlines()
        worker = int(next(line for line in lines if line.isdigit()))
        assert os.getsid(worker) == worker != os.getsid(proc.pid)  # outside the leader's group and session
        procs.terminate_group(proc.pid, timeout_s=2)
        assert not procs.alive(proc.pid)
        assert gone(worker)
    finally:
        procs.terminate_group(proc.pid, timeout_s=1)


def test_last_error_prefers_a_line_naming_an_error(tmp_path):
    log = tmp_path / "log"
    log.write_text("start\nSEVERE: disk full\nshutting down\n")
    assert procs.last_error(log) == "shutting down"  # no default marker matches: the last line
    assert procs.last_error(log, ("SEVERE",)) == "SEVERE: disk full"
    assert procs.last_error(tmp_path / "missing") == "no output"
