#!/usr/bin/env bash
# Takes a picture of the herd's live page (GET / on an admin listener) with headless
# Chromium. Installs nothing: it needs Debian's `chromium` package (apt-get install
# chromium) and builds the release `herd` with cargo.
#
#   scripts/screenshot.sh [OUT.png]
#       Starts the five servers of the shipped herd.toml (their ports must be free), checks
#       clients in, stops one server so that its links are down, takes the picture of
#       Hill's page while a light load runs, and stops everything it started.
#   HERD_ADMIN_URL=http://127.0.0.1:12100/ scripts/screenshot.sh [OUT.png]
#       Takes the picture of a herd that is already running, as it is.
#
# Environment:
#   SCREENSHOT_STOP   the server to stop before the picture (default Jaquez; empty: none)
#   SCREENSHOT_SIZE   the window, WIDTH,HEIGHT (default 1400,720)
#
# OUT.png defaults to docs/herd-live.png. Logs and stores go to a temporary folder; the
# script stops only the processes it started, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/docs/herd-live.png}")
STOP=${SCREENSHOT_STOP-Jaquez}
SIZE=${SCREENSHOT_SIZE:-1400,720}
CONFIG=$ROOT/herd.toml

if ! command -v chromium >/dev/null; then
    echo "screenshot.sh: no chromium: install Debian's package first (apt-get install chromium)" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/herd-screenshot.XXXXXX")
STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

shoot() {
    echo "screenshot.sh: chromium -> $OUT" >&2
    # A fresh profile, no network but the page's own, and a virtual-time budget so the
    # page's script has fetched /herd and drawn it before the picture is taken.
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$TMP/chromium" --window-size="$SIZE" \
        --virtual-time-budget=3000 --screenshot="$OUT" "$1" >"$TMP/chromium.log" 2>&1 || {
        cat "$TMP/chromium.log" >&2
        exit 1
    }
}

if [ -n "${HERD_ADMIN_URL:-}" ]; then
    shoot "$HERD_ADMIN_URL"
    exit 0
fi

cd "$ROOT"
echo "screenshot.sh: building the release binary" >&2
cargo build --release --quiet --bin herd
HERD=$ROOT/target/release/herd

# The herd's names and ports, from the shipped file.
mapfile -t NAMES < <(sed -n 's/^\[servers\.\(.*\)\]$/\1/p' "$CONFIG")
mapfile -t PORTS < <(sed -n 's/^\(addr\|admin\) = "127\.0\.0\.1:\([0-9]*\)".*/\2/p' "$CONFIG")
for port in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "screenshot.sh: port $port of herd.toml is taken; stop what runs there, or set" \
            "HERD_ADMIN_URL to take the picture of a running herd" >&2
        exit 1
    fi
done

# Only the generated secret and the temporary folders may speak to the servers.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(HERD_|GOOGLE_PLACES_API_KEY$)' || true)
export HERD_SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export HERD_LOG__DIR=$TMP/logs HERD_STORE__DIR=$TMP/data
declare -A PID
for name in "${NAMES[@]}"; do
    "$HERD" serve "$name" --config "$CONFIG" 2>>"$TMP/serve.err" &
    STARTED+=($!)
    PID[$name]=$!
done

# until_status PATTERN: waits (20 s at most) until `herd status` prints a line matching it.
until_status() {
    local _
    for _ in $(seq 1 100); do
        "$HERD" status --config "$CONFIG" 2>/dev/null | grep -Eq "$1" && return 0
        sleep 0.2
    done
    echo "screenshot.sh: the herd never showed /$1/:" >&2
    "$HERD" status --config "$CONFIG" >&2 || true
    exit 1
}
for name in "${NAMES[@]}"; do until_status "^$name .* ([0-9])/\\1 "; done

# Clients check in at every server, and a few ask where they are.
for i in $(seq 1 60); do
    lat=$(printf '+34.%02d' $((i % 100)))
    echo "IAMAT phone-$i $lat-118.4451 $(date +%s).$i"
done | "$HERD" client "${NAMES[0]}" --config "$CONFIG" >/dev/null
"$HERD" client "${NAMES[2]}" --config "$CONFIG" "WHATSAT phone-7 10 5" "WHATSAT phone-8 10 5" >/dev/null

if [ -n "$STOP" ]; then
    echo "screenshot.sh: stopping $STOP" >&2
    kill -TERM "${PID[$STOP]}"
    wait "${PID[$STOP]}" 2>/dev/null || true
fi

# A light load on the servers that are up, so the nodes show check-ins/s.
LIVE=()
while read -r name addr; do
    [ "$name" = "$STOP" ] || LIVE+=("$name=$addr")
done < <(awk '/^\[servers\./ { gsub(/^\[servers\.|\]$/, ""); n = $0 }
              /^addr = / { gsub(/"/, "", $3); print n, $3 }' "$CONFIG")
(IFS=,; "$HERD" bench iamat --servers "${LIVE[*]}" --connections 4 --depth 1 --duration 12 \
    --settle 1 >"$TMP/bench.out" 2>&1) &
STARTED+=($!)
sleep 6
shoot "http://127.0.0.1:$(sed -n 's/^admin = "127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$CONFIG" | head -1)/"
echo "screenshot.sh: wrote $OUT" >&2
