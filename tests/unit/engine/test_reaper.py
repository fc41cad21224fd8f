"""``llmship.engine.reaper`` on real processes: an owner that spawns an "engine" child and its reaper, as the
chat worker does after vLLM starts, then dies by SIGKILL (the engine must not outlive it) or stops its engine
cleanly (the reaper must leave on its own)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from llmship.engine import reaper
from tests.conftest import REPO
from tests.helpers.procs import gone

# The owner: an engine-like child that ignores SIGTERM (the worst case: it needs the SIGKILL), then a reaper for it
# (POLL_S shortened through the module attribute), then it prints both pids and waits to be killed or told to stop.
OWNER = """
import signal, subprocess, sys, time
import psutil
from llmship.engine import reaper
from tests.helpers.procs import gone
reaper.POLL_S = 0.1
engine = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
watcher = subprocess.Popen([sys.executable, "-c",
    "import sys; from llmship.engine import reaper; reaper.POLL_S = 0.1; reaper.GRACE_S = 1.0; "
    "reaper.main(sys.argv[1:])", str(__import__('os').getpid()), f"{engine.pid}:{psutil.Process(engine.pid).create_time()!r}"])
print(engine.pid, watcher.pid, flush=True)
if sys.stdin.readline().strip() == "stop":  # a clean stop: the engine goes first, then the owner waits
    engine.kill(); engine.wait()
    watcher.wait(timeout=30)
    print("reaper left", watcher.returncode, flush=True)
time.sleep(120)
"""




def _owner() -> tuple[subprocess.Popen, int, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env, cwd=REPO)
    assert owner.stdout is not None
    engine, watcher = map(int, owner.stdout.readline().split())
    return owner, engine, watcher


def _waitgone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.1)
    return gone(pid)


def test_a_killed_owners_engine_is_reaped():
    owner, engine, watcher = _owner()
    try:
        assert not gone(engine) and not gone(watcher)
        owner.kill()  # SIGKILL: no shutdown hook runs, as when the OOM killer or a test kills a worker
        owner.wait()
        assert _waitgone(engine, 30), "the orphaned engine survived its owner"
        assert _waitgone(watcher, 30), "the reaper did not exit after reaping"
    finally:
        for pid in (engine, watcher):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_after_a_clean_stop_the_reaper_leaves_on_its_own():
    owner, engine, watcher = _owner()
    try:
        assert owner.stdin is not None and owner.stdout is not None
        owner.stdin.write("stop\n")
        owner.stdin.flush()
        assert owner.stdout.readline().strip() == "reaper left 0"
        assert owner.poll() is None  # the owner lives on: the reaper left because its engine had gone
    finally:
        owner.kill()
        owner.wait()
        for pid in (engine, watcher):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_pid_reused_by_another_process_is_not_ours():
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(other.pid).create_time()
        assert [p.pid for p in reaper._ours([f"{other.pid}:{started!r}"])] == [other.pid]
        assert reaper._ours([f"{other.pid}:{started - 100!r}"]) == []  # same pid, another start: not ours
        assert reaper.reap([f"{other.pid}:{started - 100!r}"], grace_s=0.5) == 0
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_engine_processes_are_only_vllms():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid not in {p.pid for p in reaper.engine_processes()}
        assert reaper.start_reaper([]) is None  # nothing to watch: no reaper
    finally:
        child.kill()
        child.wait()
