"""The ``llmship`` command: one module per command group (``serve``, ``keys``, ``eval``, ``status`` and
``rollback``, ``models``/``chat``/``stat``, ``graph``), each adding its parsers with ``register``. Errors print one
line and exit non-zero."""

from __future__ import annotations

import argparse
import os
import sys

from llmship.cli import client, evals, graph, keys, release, serve
from llmship.cli._common import DEFAULT_URL
from llmship.errors import LlmshipError

__all__ = ["DEFAULT_URL", "build_parser", "main"]
GROUPS = (serve, keys, evals, release, client, graph)  # the order `llmship --help` lists them in


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmship", description="Release language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # MLflow logs "Creating initial MLflow database tables" at INFO on a fresh store;
    # the CLI's contract is its own output plus at most one error line.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlmshipError as err:
        print(f"llmship: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
