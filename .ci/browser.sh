#!/usr/bin/env bash
# Make sure Chromium is installed for the console's browser tests (Playwright drives it headless;
# the playwright wheel ships its driver, never a browser: this machine downloads none): Debian
# package chromium, at /usr/bin/chromium. Installs it with apt-get when run as root; otherwise says
# what to install.
set -u

browser_ready() { test -x /usr/bin/chromium; }

if ! browser_ready; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium…"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  fi
  browser_ready || { echo "Chromium is missing: sudo apt-get install chromium" >&2; exit 1; }
fi
