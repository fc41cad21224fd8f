"""Put a knowledge pipeline on its cron schedule, where the active ZenML orchestrator can run schedules.

    python -m pipelines.schedule embedding_refresh [-c configs/embedding_refresh.yaml]

The config's ``parameters.schedule.cron_expression`` is validated, then handed to ZenML
(``with_options(schedule=Schedule(cron_expression=...))``). The local orchestrator cannot run schedules:
then nothing is scheduled, one line says so and what to do instead (cron/CI running the plain
``zenml pipeline run`` command, e.g. ``.github/workflows/knowledge-refresh.yml``), and the exit code is 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from llmship.knowledge.ingest.embedding_refresh import ScheduleConfig

PIPELINES = ("embedding_refresh", "kg_update")


def read_schedule(config_path: Path) -> ScheduleConfig:
    config = yaml.safe_load(config_path.read_text()) or {}
    raw = (config.get("parameters") or {}).get("schedule")
    if not raw:
        raise ValueError(f"{config_path} has no parameters.schedule.cron_expression")
    return ScheduleConfig.model_validate(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.schedule", description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", choices=PIPELINES)
    parser.add_argument("-c", "--config", type=Path, default=None, help="default: configs/<pipeline>.yaml")
    args = parser.parse_args(argv)
    config_path = args.config or Path("configs") / f"{args.pipeline}.yaml"
    try:
        schedule = read_schedule(config_path)
    except (OSError, ValueError, ValidationError) as err:
        print(f"llmship: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1

    from zenml.client import Client
    from zenml.config.schedule import Schedule

    orchestrator = Client().active_stack.orchestrator
    if not orchestrator.config.is_schedulable:
        print(f"llmship: the active orchestrator '{orchestrator.name}' ({orchestrator.flavor}) cannot run schedules, "
              f"so '{schedule.cron_expression}' was not applied. Run `zenml pipeline run pipelines.{args.pipeline}."
              f"{args.pipeline} -c {config_path}` from cron or CI (.github/workflows/knowledge-refresh.yml), or "
              f"switch to a stack whose orchestrator schedules (README: Schedules).", file=sys.stderr)
        return 2
    pipeline = getattr(importlib.import_module(f"pipelines.{args.pipeline}"), args.pipeline)
    pipeline.with_options(config_path=str(config_path), schedule=Schedule(cron_expression=schedule.cron_expression))()
    print(f"scheduled {args.pipeline} at '{schedule.cron_expression}' on orchestrator '{orchestrator.name}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
