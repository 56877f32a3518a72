#!/usr/bin/env bash
# System packages the browser tests need: Debian's Chromium, driven by Playwright.
# (`playwright install` downloads browsers, which this project never does.)
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "Chromium for the browser tests: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium) (already installed)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "Chromium for the browser tests: installing Debian's 'chromium' package with apt-get (about a minute)"
  started=$(date +%s)
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  step() {  # run a step quietly; show its output only if it fails
    echo "  $*"
    if ! "$@" >"$log" 2>&1; then
      cat "$log" >&2
      echo "Could not install Chromium ('$*' failed); the browser tests need /usr/bin/chromium." >&2
      exit 1
    fi
  }
  step apt-get update -qq
  step env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  echo "  installed $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium) in $(($(date +%s) - started)) s"
else
  echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install -y chromium)" >&2
  echo "or the browser tests will be skipped outside CI (on CI, CI=true, they fail)." >&2
fi

# axe-core for the accessibility checks, from npm into a git-ignored folder (never a CDN).
AXE_DIR="${PCL_AXE_DIR:-.venv/axe}"
AXE_VERSION="4.14.1"
if [ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
  echo "axe-core for the accessibility checks: $AXE_DIR (already installed)"
elif command -v npm >/dev/null 2>&1; then
  echo "axe-core for the accessibility checks: installing axe-core@$AXE_VERSION from npm into $AXE_DIR"
  npm install --prefix "$AXE_DIR" --no-audit --no-fund --silent "axe-core@$AXE_VERSION" >/dev/null
else
  echo "npm is missing: the accessibility checks need it once to install axe-core (apt-get install npm)" >&2
fi
