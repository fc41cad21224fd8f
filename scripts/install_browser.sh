#!/usr/bin/env bash
# Debian's Chromium for the chat page's browser test (tests/integration/test_chat_page.py drives /usr/bin/chromium
# with Playwright; no browser is ever downloaded). Idempotent: nothing to do when it is there.
set -euo pipefail

BROWSER=/usr/bin/chromium
[[ -x "$BROWSER" ]] && exit 0

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "install_browser: $BROWSER is missing and installing it needs root: run 'sudo apt-get install -y chromium'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: $BROWSER is missing and there is no apt-get here: install Chromium at $BROWSER" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh container has no package lists: fetch them only when the package is unknown.
if ! apt-cache show chromium >/dev/null 2>&1; then
  "${as_root[@]}" apt-get update -qq
fi
"${as_root[@]}" apt-get install -y -qq chromium >/dev/null
[[ -x "$BROWSER" ]] || { echo "install_browser: apt-get installed chromium but $BROWSER is still missing" >&2; exit 1; }
echo "install_browser: installed $("$BROWSER" --version 2>/dev/null || echo chromium)"
