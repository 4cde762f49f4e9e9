#!/usr/bin/env bash
# Installs the real Prometheus tools the tests need into .tools/ (git-ignored):
# promtool and prometheus from Debian's `prometheus` package, alertmanager and
# amtool from `prometheus-alertmanager`.  `apt-get download` + `dpkg -x`
# unpacks the binaries without installing services.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools"
mkdir -p "$tools/debs"

need=()
[ -x "$tools/root/usr/bin/promtool" ] || need+=(prometheus)
[ -x "$tools/root/usr/bin/prometheus-alertmanager" ] || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install-tools: apt-get is not available; install Debian's ${need[*]} packages by hand" >&2
  exit 1
fi
cd "$tools/debs"
if ! apt-get download "${need[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get download "${need[@]}"
fi
for deb in ./*.deb; do
  dpkg -x "$deb" "$tools/root"
done
"$tools/root/usr/bin/promtool" --version | head -1
