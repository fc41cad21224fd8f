#!/usr/bin/env bash
# Run one ZenML pipeline (`scripts/pipeline.sh NAME [CONFIG]`), keep the full log, print one line per step and end
# with one clear line.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
name="$1"
config="${2:-configs/$name.yaml}"
log="$LLMSHIP_HOME/logs/$name-$(date +%Y%m%d-%H%M%S).log"
mkdir -p "$(dirname "$log")"
# one line per step on the terminal (scripts/step_progress.py), everything in the log
if ! ZENML_LOGGING_VERBOSITY=INFO zenml pipeline run "pipelines.$name.$name" -c "$config" -s llmship 2>&1 \
    | python3 scripts/step_progress.py "$log"; then
  # The core raises llmship.errors.* with a complete one-line message; show the last one.
  reason=$(grep -E '^llmship\.errors\.[A-Za-z]+: ' "$log" | tail -n 1 | sed -E 's/^llmship\.errors\.[A-Za-z]+: //')
  echo "" >&2
  echo "$name failed: ${reason:-the pipeline failed; see the log} (full log: $log)" >&2
  exit 1
fi
