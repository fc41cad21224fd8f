"""Which running process ``graphstore.server`` takes for its own (a recycled pid must not be mistaken for it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmship import procs
from llmship.knowledge.graphstore import server


@pytest.mark.parametrize(("argv_tail", "ours"), [
    (["llmship.knowledge.graphstore.server"], True),
    (["llmship.knowledge.server"], True),  # started before the package split: still ours after an upgrade
    (["something.else"], False),
])
def test_a_process_is_ours_by_its_command_line(argv_tail, ours):
    # -I and a bare environment: what earlier tests left in os.environ (vLLM's thread and preload settings) must
    # not reach the child; stderr is kept so a child that died says why
    proc = subprocess.Popen([sys.executable, "-I", "-c", "import time; time.sleep(60)", *argv_tail],
                            env={"PATH": os.environ.get("PATH", "")}, stderr=subprocess.PIPE)
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"time.sleep" not in cmdline.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until the exec'ed interpreter shows its own command line
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert server._alive(proc.pid) is ours
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert not procs.alive(proc.pid)
