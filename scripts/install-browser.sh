#!/usr/bin/env bash
# Installs Debian's Chromium for the status board's browser test
# (tests/e2e/test_statusboard.py), unless a chromium is already on the PATH.
# Debian's package, not a browser download: `apt-get update` once, then
# `apt-get install -y --no-install-recommends chromium`.
set -euo pipefail

for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: apt-get is not available; install Debian's chromium package by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-browser: run as root (or install sudo) to install Debian's chromium package" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
