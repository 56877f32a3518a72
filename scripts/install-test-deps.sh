#!/usr/bin/env bash
# System packages the browser tests need: Debian's Chromium, driven by Playwright.
# (`playwright install` downloads browsers, which this project never does.)
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install -y chromium)" >&2
  echo "or the browser tests will be skipped outside CI." >&2
fi
