#!/usr/bin/env bash
# make deploy: run the deploy_llm pipeline, keep the full log, print one line per step and end
# with one clear line.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
config="${1:-configs/deploy_llm.yaml}"
log="$LLMSHIP_HOME/logs/deploy-$(date +%Y%m%d-%H%M%S).log"
mkdir -p "$(dirname "$log")"
start=$(date +%s)
# one line per step on the terminal (scripts/step_progress.py), everything in the log
if ZENML_LOGGING_VERBOSITY=INFO zenml pipeline run pipelines.deploy_llm.deploy_llm -c "$config" -s llmship 2>&1 \
    | python3 scripts/step_progress.py "$log"; then
  llmship serve info --elapsed $(( $(date +%s) - start ))
else
  # The core raises llmship.errors.* with a complete one-line message; show the last one.
  reason=$(grep -E '^llmship\.errors\.[A-Za-z]+: ' "$log" | tail -n 1 | sed -E 's/^llmship\.errors\.[A-Za-z]+: //')
  echo "" >&2
  echo "deploy failed: ${reason:-the pipeline failed; see the log} (full log: $log)" >&2
  exit 1
fi
