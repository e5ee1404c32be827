#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser): installed from the distribution's
# packages when missing, never downloaded by a test tool. Fails when it cannot be had.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi
[ -x /usr/bin/chromium ] || { echo "the browser tests need /usr/bin/chromium (Debian's chromium)" >&2; exit 1; }
