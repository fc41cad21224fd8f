#!/usr/bin/env python3
"""Read a ZenML pipeline run's output on stdin, keep all of it in a log file, print one line per step.

Why: a run's output is hundreds of lines of third-party warnings and progress bars (vLLM, transformers,
MLflow, BentoML) in which the step boundaries cannot be seen. The terminal gets, per step, its name, its time
and what it produced (the ``result: ...`` line the step printed, if any); the full output stays in the log,
whose path is printed first. Parses ZenML's own INFO lines ("Step `x` has started.", "... has finished in `t`.",
"Step x failed.", "Using cached version of step `x`."), so the run needs ZENML_LOGGING_VERBOSITY=INFO.

Usage: ``zenml pipeline run ... 2>&1 | python scripts/step_progress.py LOG`` (scripts/pipeline.sh does this).
Standard library only: it runs beside any environment.
"""

from __future__ import annotations

import re
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STARTED = re.compile(r"^Step `?(\w+)`? has started\.")
FINISHED = re.compile(r"^Step `?(\w+)`? has finished in `?([^`]+?)`?\.$")
FAILED = re.compile(r"^Step `?(\w+)`? failed\.")
CACHED = re.compile(r"^Using cached version of step `?(\w+)`?\.")
RESULT = re.compile(r"^result: (.+)$")


def _line(status: str, step: str, took: str, result: str | None) -> str:
    return f"  {status:<5} {step:<22} {took:>9}  {result or ''}".rstrip() + "\n"


def main(log_path: str) -> int:
    result, started = None, time.monotonic()
    say = sys.stdout
    live = say.isatty()  # the "running" line is redrawn in place on a terminal only, never in a CI log
    say.write(f"full log: {log_path}\n")
    say.flush()
    with open(log_path, "a", encoding="utf-8", errors="replace") as log:
        for raw in sys.stdin:
            log.write(raw)
            log.flush()
            line = ANSI.sub("", raw).rstrip("\n")
            if m := STARTED.match(line):
                result, started = None, time.monotonic()
                if live:
                    say.write(f"  ..    {m.group(1):<22} running\r")
            elif m := RESULT.match(line):
                result = m.group(1)
            elif m := FINISHED.match(line):
                say.write(_line("ok", m.group(1), m.group(2), result))
            elif m := CACHED.match(line):
                say.write(_line("ok", m.group(1), "cached", None))
            elif m := FAILED.match(line):
                say.write(_line("FAIL", m.group(1), f"{time.monotonic() - started:.1f}s", result))
            say.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: step_progress.py LOG_FILE")
    sys.exit(main(sys.argv[1]))
