"""Stop a vLLM engine's processes when the worker that owns them dies without stopping them.

vLLM runs its engine core (and, under it, the model worker) in child processes of the process that created the
engine: here a chat Bento worker. A clean stop closes them (``ServedEngine.stop``). A worker that is SIGKILLed,
or killed by the OOM killer, cannot: vLLM 0.32's engine core does not watch its parent, so it lives on as an
orphan, holding the model's memory and its CPU threads, while BentoML starts a new worker that loads a second
copy. Seen in the worker-kill test, where orphans from the killed worker survived the whole suite.

So each engine gets a reaper: a small process, started right after the engine is up, that knows the engine's
processes (pid and start time: a reused pid is never mistaken for one) and the worker's pid. It polls once a
second: when the worker is gone (the reaper's parent changed), it SIGTERMs the engine's processes, waits, then
SIGKILLs what is left, and exits; when the engine's processes are gone (a clean stop), it exits too.

Run as ``python -m llmship.engine.reaper OWNER_PID PID:START_TIME ...``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from llmship.procs import kill_survivors

log = logging.getLogger(__name__)
POLL_S = 1.0
GRACE_S = 5.0


def engine_processes() -> list:
    """vLLM's processes under this one now (right after the engine started: its engine core and workers). vLLM
    titles them ``VLLM::EngineCore``, ``VLLM::Worker``...; other children (a test's servers) are not the engine's."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            title = (proc.cmdline() or [""])[0]
        except psutil.Error:
            continue
        if title.startswith("VLLM"):
            found.append(proc)
    return found


def start_reaper(processes: list | None = None) -> subprocess.Popen | None:
    """Start a reaper for ``processes`` (default: ``engine_processes()``), owned by this process. Never
    raises: without a reaper the engine still serves, and a warning says what is lost."""
    try:
        procs = engine_processes() if processes is None else processes
        if not procs:
            return None
        specs = [f"{p.pid}:{p.create_time()!r}" for p in procs]
        return subprocess.Popen([sys.executable, "-m", "llmship.engine.reaper", str(os.getpid()), *specs],
                                stdin=subprocess.DEVNULL, close_fds=True)
    except Exception as err:  # noqa: BLE001 - best effort by design (see docstring)
        log.warning("no reaper for the engine's processes (an orphaned engine would outlive a killed worker): %s",
                    err)
        return None


def _ours(specs: list[str]) -> list:
    """The processes named by ``pid:start_time`` that still run and are the same processes."""
    import psutil

    found = []
    for spec in specs:
        pid, _, started = spec.partition(":")
        try:
            proc = psutil.Process(int(pid))
            if abs(proc.create_time() - float(started)) < 1e-3 and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, ValueError):
            continue
    return found


def reap(specs: list[str], grace_s: float = GRACE_S) -> int:
    """SIGTERM the named processes that still run, SIGKILL them after ``grace_s``; how many there were."""
    import psutil

    procs = _ours(specs)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    kill_survivors(procs, grace_s=grace_s)
    return len(procs)


def watch(owner: int, specs: list[str], poll_s: float = POLL_S) -> int:
    """Wait until the owner dies (then reap) or the engine's processes are gone (then leave)."""
    while os.getppid() == owner:
        if not _ours(specs):
            return 0
        time.sleep(poll_s)
    return reap(specs)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit("usage: python -m llmship.engine.reaper OWNER_PID PID:START_TIME ...")
    reaped = watch(int(args[0]), args[1:])
    if reaped:
        print(f"llmship reaper: worker {args[0]} died; stopped {reaped} orphaned engine process(es)",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
