"""Which running process ``graphstore.server`` takes for its own (a recycled pid must not be mistaken for it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmship import procs
from llmship.knowledge.graphstore import server


@pytest.mark.parametrize(("argv_tail", "ours"), [
    (["llmship.knowledge.graphstore.server"], True),
    (["llmship.knowledge.server"], True),  # started before the package split: still ours after an upgrade
    (["something.else"], False),
])
def test_a_process_is_ours_by_its_command_line(argv_tail, ours):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv_tail])
    try:
        assert server._alive(proc.pid) is ours
    finally:
        proc.kill()
        proc.wait()
    assert not procs.alive(proc.pid)
