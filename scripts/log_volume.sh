#!/usr/bin/env bash
# What the event log costs in bytes, the figures of README "Logs" and docs/operations.md:
# the default herd's five servers (its graph, on free loopback ports, store in a temp
# folder) started with `herd up`; the log bytes after start-up, after IDLE seconds idle,
# and per check-in under `herd bench iamat` (50 connections, LOAD seconds).
#
#   scripts/log_volume.sh                 # about 20 s
#   LOG_IDLE=60 LOG_LOAD=10 scripts/log_volume.sh
#
# Builds the release binary unless LOG_HERD names one. Loopback only; stops what it
# started, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IDLE=${LOG_IDLE:-10}
LOAD=${LOG_LOAD:-5}
cd "$ROOT"
if [ -n "${LOG_HERD:-}" ]; then
    HERD=$(realpath "$LOG_HERD")
else
    cargo build --release --quiet --bin herd
    HERD=${CARGO_TARGET_DIR:-$ROOT/target}/release/herd
fi
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^HERD_' || true)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/herd-logs.XXXXXX")
UP=
cleanup() {
    if [ -n "$UP" ]; then
        kill -TERM "$UP" 2>/dev/null || true
        wait "$UP" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# Five ports below the ephemeral range with nothing listening on them.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while :; do
    BASE=$((20000 + RANDOM % 10000))
    free=1
    for i in 0 1 2 3 4; do listening $((BASE + i)) && free=0; done
    [ "$free" = 1 ] && break
done
# The shipped herd.toml with its servers on those ports and no admin listeners; logs and
# store here (HERD_LOG__DIR, HERD_STORE__DIR).
awk -v base="$BASE" '
    /^admin = / { next }
    match($0, /127\.0\.0\.1:1200[0-4]/) {
        n = substr($0, RSTART + RLENGTH - 1, 1)
        $0 = substr($0, 1, RSTART - 1) "127.0.0.1:" (base + n) substr($0, RSTART + RLENGTH)
    }
    { print }' herd.toml >"$TMP/herd.toml"
export HERD_LOG__DIR=$TMP/logs HERD_STORE__DIR=$TMP/data
SERVERS=$(for i in 0 1 2 3 4; do printf '127.0.0.1:%d,' $((BASE + i)); done)
SERVERS=${SERVERS%,}

log_bytes() { cat "$TMP"/logs/*.log 2>/dev/null | wc -c; }

"$HERD" up --config "$TMP/herd.toml" 2>"$TMP/up.err" &
UP=$!
for _ in $(seq 1 600); do
    grep -q "servers up from" "$TMP/up.err" && break
    sleep 0.05
done
grep -q "servers up from" "$TMP/up.err" || { cat "$TMP/up.err" >&2; exit 1; }
# The links come up and the start-up lines are written (the writer flushes every 50 ms).
sleep 2
started=$(log_bytes)
sleep "$IDLE"
idle=$(log_bytes)
out=$("$HERD" bench iamat --servers "$SERVERS" --connections 50 --duration "$LOAD" --json 2>/dev/null)
sleep 1
loaded=$(log_bytes)
check_ins=$(sed -n 's/.*"check_ins":\([0-9]*\).*/\1/p' <<<"$out")
awk -v s="$started" -v i="$idle" -v l="$loaded" -v n="$check_ins" -v t="$IDLE" 'BEGIN {
    printf "after start-up: %d bytes, %.0f per server\n", s, s / 5
    printf "idle for %d s: %d bytes more (%.0f bytes a day at that rate)\n", t, i - s, (i - s) * 86400 / t
    printf "%d check-ins: %d bytes more, %.0f bytes per check-in herd-wide\n", n, l - i, (l - i) / n
}'
