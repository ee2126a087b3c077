#!/usr/bin/env bash
# Install Debian's chromium (headless browser for the dashboard browser test).
# Idempotent: does nothing if /usr/bin/chromium already exists. Needs root (or sudo).
#
# Start it on the closed network with:
#   chromium --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
#     --disable-background-networking --disable-component-update --disable-sync \
#     --user-data-dir="$(mktemp -d)" ...
# (without these flags and a fresh profile it hangs trying to reach Google services).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    echo "install-chromium: $CHROMIUM already installed: $("$CHROMIUM" --version 2>/dev/null || echo '?')"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium: must run as root (or with sudo available)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
echo "install-chromium: apt-get update"
$SUDO apt-get update -q
echo "install-chromium: apt-get install -y --no-install-recommends chromium"
$SUDO apt-get install -y -q --no-install-recommends chromium

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install-chromium: $CHROMIUM missing after install" >&2
    exit 1
fi
echo "install-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo '?') in $(( $(date +%s) - start ))s"
