#!/usr/bin/env bash
# make test: the unit suite on both cores, then the integration, reliability and e2e suites one test at a time.
#
# The unit tests run in-process on real local parts and share little, so pytest-xdist runs them on
# LLMSHIP_TEST_WORKERS processes (2: CI's cores), grouped so the tiny vLLM engine and the embedded graph server each
# start once (tests/conftest.py). The other suites start real `bentoml serve` trees, measure under load and kill
# workers: two of them at once would fight over the two cores, and their deadlines would measure that instead.
# Arguments go to both runs (`make test PYTEST_ARGS="-x"`); a run that selects nothing (exit 5) is not a failure.
set -uo pipefail
status=0
for suite in unit rest; do
  if [ "$suite" = unit ]; then
    python -m pytest -m unit -n "${LLMSHIP_TEST_WORKERS:-2}" "$@"
  else
    python -m pytest -m "not unit" "$@"
  fi
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    status=$rc
  fi
done
exit "$status"
