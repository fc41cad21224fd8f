#!/usr/bin/env bash
# make test: the unit suite on both cores, then the integration, reliability and e2e suites one test at a time.
#
# The unit tests run in-process on real local parts and share little, so pytest-xdist runs them on
# LLMSHIP_TEST_WORKERS processes (2: CI's cores), grouped so the tiny vLLM engine and the embedded graph server each
# start once (tests/conftest.py). The other suites start real `bentoml serve` trees, measure under load and kill
# workers: two of them at once would fight over the two cores, and their deadlines would measure that instead.
# Arguments go to both runs (`make test PYTEST_ARGS="-x"`); a run that selects nothing (exit 5) is not a failure.
#
# CI keeps only the end of the output, so each suite's summary is kept and both are printed again last: a unit
# failure is otherwise half an hour of scrollback above the line that says make failed.
set -uo pipefail
status=0
summaries=$(mktemp -d)
trap 'rm -rf "$summaries"' EXIT
for suite in unit rest; do
  if [ "$suite" = unit ]; then
    python -m pytest -m unit -n "${LLMSHIP_TEST_WORKERS:-2}" "$@" 2>&1 | tee "$summaries/$suite.log"
  else
    python -m pytest -m "not unit" "$@" 2>&1 | tee "$summaries/$suite.log"
  fi
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    status=$rc
  fi
  echo "$suite: pytest exit $rc" >"$summaries/$suite.rc"
done
echo "=== make test: both suites (failures repeated from above) ==="
for suite in unit rest; do
  cat "$summaries/$suite.rc"
  # pytest's short summary (-ra): FAILED/ERROR lines with their one-line reason, and the closing count line
  grep -E '^(FAILED|ERROR) |^=+ .*(passed|failed|error).* in [0-9.]+s' "$summaries/$suite.log" | tail -n 40
done
exit "$status"
