#!/usr/bin/env bash
# Makes sure the browser tests can run: finds Debian's chromium and chromedriver, installing them
# (and a Chinese font, so screenshots show Chinese) with apt-get when missing and we are root.
# Prints a loud banner when the browser is not there; the browser test then skips.
set -uo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
fonts() { fc-list :lang=zh 2>/dev/null | grep -q .; }
if { ! have || ! fonts; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "=== installing chromium, chromium-driver and a Chinese font for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei >/dev/null 2>&1 || true
fi
if have; then
  echo "=== browser tests: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | head -1)"
else
  echo "!!! ================================================================="
  echo "!!! chromium / chromedriver NOT FOUND: the browser tests will be SKIPPED."
  echo "!!! Install them with: apt-get install chromium chromium-driver"
  echo "!!! ================================================================="
fi
