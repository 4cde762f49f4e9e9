#!/usr/bin/env bash
# Regenerates the documentation's screenshots from the demo itself:
#
#   scripts/screenshots.sh            # writes docs/status-board.png
#
# It starts `whatsapp-number-exporter --demo` on a free loopback port, waits
# until every account's first poll is published (/-/ready) and then until the
# demo's first state change after that shows in /metrics, then takes the
# status board with Debian's headless Chromium (scripts/install-browser.sh),
# with the flags tests/e2e/test_statusboard.py uses, at 1400x1000 (the size the
# tests expect). Set WAIT_SECONDS to give the demo longer (default 180).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-$root/.venv/bin/python}
out=${OUT:-$root/docs/status-board.png}
wait_seconds=${WAIT_SECONDS:-180}

browser=""
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then browser=$(command -v "$name"); break; fi
done
if [ -z "$browser" ]; then
  echo "screenshots: chromium is not installed: run scripts/install-browser.sh" >&2
  exit 1
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -m exporter --demo --web.listen-address="127.0.0.1:$port" \
  --log.level=warn >"$work/exporter.log" 2>&1 &
pid=$!

# Wait (no fixed sleep: poll until it shows) for /-/ready, i.e. every account's
# first poll published, and then for the demo's first state change after that,
# so the board shows the demo running rather than its first second.
"$python" - "$url" "$wait_seconds" "$pid" <<'EOF'
import os, re, sys, time, urllib.request

url, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
state = re.compile(r'^whatsapp_phone_number_(?:status|quality_rating|messaging_limit_tier)\{.*\} 1(?:\.0)?$', re.M)
deadline = time.monotonic() + limit


def get(path):
    try:
        with urllib.request.urlopen(url + path, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except OSError:
        return None, ""


def until(what, condition):
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("screenshots: the demo exited")
        if condition():
            return
        if time.monotonic() > deadline:
            sys.exit(f"screenshots: {what} did not happen within {limit:.0f} s")
        time.sleep(0.5)  # how often to look, not how long to wait


until("/-/ready", lambda: get("/-/ready")[0] == 200)
first = set(state.findall(get("/metrics")[1]))
until("a state change", lambda: set(state.findall(get("/metrics")[1])) - first)
EOF

mkdir "$work/profile"
(cd "$work" && "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
  --hide-scrollbars --user-data-dir="$work/profile" --screenshot="$work/status-board.png" \
  --window-size=1400,1000 "$url/" >"$work/chromium.log" 2>&1) || { cat "$work/chromium.log" >&2; exit 1; }

"$python" - "$work/status-board.png" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert struct.unpack(">II", data[16:24]) == (1400, 1000), "wrong size"
assert len(data) > 20_000, "blank screenshot"
EOF
mkdir -p "$(dirname "$out")"
cp "$work/status-board.png" "$out"
echo "screenshots: wrote $out from the demo at $url"
