"""``llmship.procs``: the one launcher behind ``bentoml serve`` and the embedded graph, on real child processes."""

from __future__ import annotations

import os
import sys

import pytest

from llmship import procs


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


def test_last_error_prefers_a_line_naming_an_error(tmp_path):
    log = tmp_path / "log"
    log.write_text("start\nSEVERE: disk full\nshutting down\n")
    assert procs.last_error(log) == "shutting down"  # no default marker matches: the last line
    assert procs.last_error(log, ("SEVERE",)) == "SEVERE: disk full"
    assert procs.last_error(tmp_path / "missing") == "no output"
