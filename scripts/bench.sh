#!/usr/bin/env bash
# Benchmarks proxy-herd against the Python asyncio baseline and the same herd in Node.js
# with `herd bench`, and prints one Markdown table: scenario, figure, ours, baseline,
# ratio, target, met?, and ours against the Node.js herd.
#
#   scripts/bench.sh                      # about 7 minutes on 2 cores
#   BENCH_REPEAT=1 scripts/bench.sh       # one run of each: about 2.5 minutes
#   BENCH_DURATION=30 scripts/bench.sh    # longer load runs
#   BENCH_ONLY=iamat50 BENCH_REPEAT=5 scripts/bench.sh   # one scenario, every kind of herd
#
# Environment:
#   BENCH_DURATION   seconds of load per iamat/whatsat run (default 5)
#   BENCH_ROUNDS     flood rounds (default 300: p99 is then the 3rd slowest)
#   BENCH_IDLE       idle connections of the conns run (default 10000)
#   BENCH_STORE_RECORDS  records in the store of the start-up-from-a-store run
#                    (default 1000000)
#   BENCH_REPEAT     runs of every scenario; the table shows medians (default 3)
#   BENCH_BASELINE   the baseline folder (default ../shared/baseline beside the repo);
#                    when it is absent, only our figures are printed
#   BENCH_KEEP=1     keep the temp folder (configs, logs, raw JSON) and say where it is
#   BENCH_ONLY       the scenarios to run, comma-separated, of iamat50, iamat1, whatsat10,
#                    flood, conns, startup, startup_store, workers (default: all); an
#                    unknown one stops the script before anything runs
#   BENCH_BEFORE     another herd binary (an older build): IAMAT-50 also runs against the
#                    five-server herd of it, and a table compares it with ours
#   BENCH_HERD       the herd binary to bench as ours (default: this tree's release
#                    build), to compare revisions
#   BENCH_KINDS      the variants of ours that run beside it, separated by commas or
#                    spaces, of mem, tls, admin (default: all three; empty: none);
#                    BENCH_KINDS=admin BENCH_ONLY=iamat50 pairs ours with admin and nothing
#                    else; an unknown one stops the script
#
# Everything runs on loopback. Each scenario gets a freshly started herd of each kind,
# ours first, then the baseline's, then the Node.js herd's (node_herd.js beside the
# baseline, when `node` is installed), with the same `herd bench` command line. The IAMAT-50 and
# flood scenarios also run against ours with mutual TLS on its peer links (`tls`, its
# certificates from `herd certs`), and a second table compares it with ours on plain links.
# The `workers` scenario runs one server alone with `workers = 1` and `workers = 2`, and, as
# the ceiling any single server could reach on this machine, two independent one-worker
# servers (IAMAT-50 spread over both; WHATSAT-10 on cached answers, from a fake Google
# upstream: the baseline's, or scripts/fake_places.py). Our five-server herd always runs
# with the workers `herd up` would give each server (HERD_WORKERS = nproc / 5, at least 1).
# IAMAT-50 also runs against ours with an admin listener on every server, each scraped
# (GET /metrics) once a second as Prometheus would (`admin`), and a third table compares it
# with ours without. After each admin run the script reads every server's /metrics once more
# and keeps it (out/metrics/ in the temp folder), and below the third table it prints, per
# run, the store's commits, records per commit and mean commit time from them.
# The script stops only the processes it started, by PID, on exit whatever happens. See
# docs/benchmarks.md for how to read the table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASELINE=${BENCH_BASELINE:-$ROOT/../shared/baseline}
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-300}
STORE_RECORDS=${BENCH_STORE_RECORDS:-1000000}
REPEAT=${BENCH_REPEAT:-3}
IDLE=${BENCH_IDLE:-10000}
SCENARIOS=(iamat50 iamat1 whatsat10 flood conns startup startup_store workers)
VARIANTS=(mem tls admin)
# known WORD LIST...: whether WORD is one of LIST.
known() {
    local w=$1 k
    shift
    for k in "$@"; do [ "$k" = "$w" ] && return 0; done
    return 1
}
ONLY=,
IFS=', ' read -r -a words <<<"${BENCH_ONLY:-${SCENARIOS[*]}}"
for w in "${words[@]}"; do
    [ -n "$w" ] || continue
    if ! known "$w" "${SCENARIOS[@]}"; then
        echo "bench.sh: BENCH_ONLY: no scenario '$w' (known: ${SCENARIOS[*]})" >&2
        exit 2
    fi
    ONLY+=$w,
done
# BENCH_KINDS set but empty runs none of the variants; unset runs all three.
EXTRA_KINDS=()
IFS=', ' read -r -a words <<<"${BENCH_KINDS-${VARIANTS[*]}}"
for w in "${words[@]}"; do
    [ -n "$w" ] || continue
    if ! known "$w" "${VARIANTS[@]}"; then
        echo "bench.sh: BENCH_KINDS: no variant '$w' (known: ${VARIANTS[*]})" >&2
        exit 2
    fi
    EXTRA_KINDS+=("$w")
done
# selected SCENARIO: whether BENCH_ONLY asks for it.
selected() { [[ "$ONLY" == *",$1,"* ]]; }
# with KIND...: those of the variants BENCH_KINDS asks for.
with() {
    local k
    for k in "$@"; do
        if [[ " ${EXTRA_KINDS[*]-} " == *" $k "* ]]; then echo "$k"; fi
    done
}
DELAY_MS=50
NAMES=(Hill Jaquez Smith Campbell Singleton)

# The herd reads HERD_* and GOOGLE_PLACES_API_KEY; only the generated config may speak.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(HERD_|GOOGLE_PLACES_API_KEY$)' || true)
# 10,000 idle connections need as many descriptors in the server and in the load tool.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd "$ROOT"
if [ -n "${BENCH_HERD:-}" ]; then
    HERD=$(realpath "$BENCH_HERD")
else
    echo "bench.sh: building the release binary" >&2
    cargo build --release --quiet --bin herd
    # Where cargo put it: CARGO_TARGET_DIR when set (relative to here, as cargo reads it).
    TARGET_DIR=${CARGO_TARGET_DIR:-target}
    [[ "$TARGET_DIR" == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
    HERD=$TARGET_DIR/release/herd
fi
BEFORE=
if [ -n "${BENCH_BEFORE:-}" ]; then BEFORE=$(realpath "$BENCH_BEFORE"); fi
# What `herd up` gives each of five servers on this machine.
UP_WORKERS=$(($(nproc) / 5))
[ "$UP_WORKERS" -ge 1 ] || UP_WORKERS=1
# Other work on the machine skews every figure: say how busy it was just before we started
# (all CPUs, over 2 s, from /proc/stat).
cpu_busy() {
    local a b
    a=$(grep '^cpu ' /proc/stat)
    sleep 2
    b=$(grep '^cpu ' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y)
        for (i = 2; i <= n; i++) total += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.0f%%", total ? 100 * (total - idle) / total : 0
    }'
}
BUSY_BEFORE=$(cpu_busy)
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "${BENCH_HERD:-}" ]; then REVISION="$("$HERD" --version), $BENCH_HERD"; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/herd-bench.XXXXXX")
mkdir -p "$TMP/logs" "$TMP/out"
STARTED=()

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "bench.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# Stops the given PIDs (all started here) and forgets them.
stop() {
    local pid kept=()
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do
        [[ " $* " == *" $pid "* ]] || kept+=("$pid")
    done
    STARTED=("${kept[@]}")
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_listening() {
    local _
    for _ in $(seq 1 1000); do
        listening "$1" && return 0
        sleep 0.01
    done
    echo "bench.sh: nothing listens on 127.0.0.1:$1 after 10 s" >&2
    return 1
}

# A block of 22 ports below the ephemeral range with nothing listening on any of them:
# ours 0-4, baseline 5-9, fake places 10, start-up runs 11 (ours) and 12-16 (baseline),
# our admin listeners 17-21.
free_block() {
    local base p ok _
    for _ in $(seq 1 50); do
        base=$((20000 + RANDOM % 12000))
        ok=1
        for ((p = base; p < base + 22; p++)); do
            if listening "$p"; then ok=0; break; fi
        done
        if [ "$ok" = 1 ]; then echo "$base"; return 0; fi
    done
    echo "bench.sh: found no 22 free ports in a row" >&2
    return 1
}

BLOCK=$(free_block)
OURS_PORT=$BLOCK
BASE_PORT=$((BLOCK + 5))
FAKE_PORT=$((BLOCK + 10))
STARTUP_OURS=$((BLOCK + 11))
STARTUP_BASE=$((BLOCK + 12))
ADMIN_PORT=$((BLOCK + 17))
servers_at() {
    local base=$1 i list=()
    for i in 0 1 2 3 4; do list+=("127.0.0.1:$((base + i))"); done
    (IFS=,; echo "${list[*]}")
}
OURS_SERVERS=$(servers_at "$OURS_PORT")
BASE_SERVERS=$(servers_at "$BASE_PORT")

HAVE_BASELINE=0
HAVE_NODE=0
if [ -f "$BASELINE/asyncio_herd.py" ] && [ -f "$BASELINE/fakeplaces.py" ]; then
    HAVE_BASELINE=1
    if [ -f "$BASELINE/node_herd.js" ] && command -v node >/dev/null 2>&1; then
        HAVE_NODE=1
    else
        echo "bench.sh: no node or no node_herd.js: no Node.js herd in this run" >&2
    fi
    if ! python3 -c "import aiohttp" 2>/dev/null; then
        echo "bench.sh: installing aiohttp for the baseline" >&2
        python3 -m pip install --quiet aiohttp >&2 ||
            echo "bench.sh: warning: no aiohttp; the baseline uses its raw-HTTP fallback" >&2
    fi
    python3 "$BASELINE/fakeplaces.py" --port "$FAKE_PORT" --delay-ms "$DELAY_MS" \
        >"$TMP/logs/fakeplaces.out" 2>&1 &
    STARTED+=($!)
    wait_listening "$FAKE_PORT"
    PLACES="provider = \"google\"
base_url = \"http://127.0.0.1:$FAKE_PORT\"
api_key = \"bench-key\""
else
    echo "bench.sh: no baseline in $BASELINE: printing our figures only" >&2
    PLACES='provider = "embedded"'
fi

# Ours keeps its records in a store (the default); the `mem` kind is the same herd with the
# store off, to show what durability costs.
herd_toml() {
    cat <<EOF
secret = ""
[places]
$PLACES
[log]
dir = "$TMP/logs/ours"
[store]
dir = "$1"
[servers.Hill]
addr = "127.0.0.1:$((OURS_PORT + 0))"
neighbours = ["Jaquez", "Smith"]
[servers.Jaquez]
addr = "127.0.0.1:$((OURS_PORT + 1))"
neighbours = ["Hill", "Singleton"]
[servers.Smith]
addr = "127.0.0.1:$((OURS_PORT + 2))"
neighbours = ["Hill", "Singleton", "Campbell"]
[servers.Campbell]
addr = "127.0.0.1:$((OURS_PORT + 3))"
neighbours = ["Smith", "Singleton"]
[servers.Singleton]
addr = "127.0.0.1:$((OURS_PORT + 4))"
neighbours = ["Jaquez", "Smith", "Campbell"]
EOF
}
herd_toml "$TMP/data" >"$TMP/herd.toml"
herd_toml "" >"$TMP/herd-mem.toml"
# The `tls` kind: the same herd with mutual TLS on every peer link.
{
    herd_toml "$TMP/data"
    printf '[tls]\ndir = "%s"\n' "$TMP/tls"
} >"$TMP/herd-tls.toml"
# Its certificates only when a tls run will use them (a herd binary of another revision,
# BENCH_HERD, may have no `herd certs` at all).
if [ -n "$(with tls)" ] && { selected iamat50 || selected flood; }; then
    "$HERD" certs --config "$TMP/herd-tls.toml" >/dev/null
fi
# The `admin` kind: the same herd, each server with an admin listener.
herd_toml "$TMP/data" |
    awk -v port="$ADMIN_PORT" '{ print } /^neighbours = / { printf "admin = \"127.0.0.1:%d\"\n", port + n++ }' \
        >"$TMP/herd-admin.toml"
cat >"$TMP/startup.toml" <<EOF
[places]
$PLACES
[log]
dir = "$TMP/logs/startup"
[store]
dir = "$TMP/startup-data"
[servers.Hill]
addr = "127.0.0.1:$STARTUP_OURS"
neighbours = []
EOF

# The `workers` scenario's servers: answers from a fake Google upstream, which they cache.
if selected workers && [ "$HAVE_BASELINE" = 0 ]; then
    python3 "$ROOT/scripts/fake_places.py" "$FAKE_PORT" >"$TMP/logs/fake_places.out" 2>&1 &
    STARTED+=($!)
    wait_listening "$FAKE_PORT"
fi
# alone_toml SMITH_NEIGHBOURS: Hill on ours + 0 and, unless SMITH_NEIGHBOURS is "none",
# Smith on ours + 1 with those neighbours (Hill then has Smith's).
alone_toml() {
    local hill='[]'
    [ "$1" = '["Hill"]' ] && hill='["Smith"]'
    printf '[places]\nprovider = "google"\nbase_url = "http://127.0.0.1:%d"\n' "$FAKE_PORT"
    printf 'api_key = "bench-key"\n[log]\ndir = "%s"\n[store]\ndir = "%s"\n' \
        "$TMP/logs/alone" "$TMP/data"
    printf '[servers.Hill]\naddr = "127.0.0.1:%d"\nneighbours = %s\n' "$OURS_PORT" "$hill"
    if [ "$1" != none ]; then
        printf '[servers.Smith]\naddr = "127.0.0.1:%d"\nneighbours = %s\n' \
            $((OURS_PORT + 1)) "$1"
    fi
}
alone_toml none >"$TMP/alone.toml"
alone_toml '[]' >"$TMP/apart.toml"
alone_toml '["Hill"]' >"$TMP/linked.toml"

HERD_PIDS=()
# Helpers of a herd that stop with it (the admin kind's scraper).
AUX_PIDS=()
# start_herd CONFIG [BINARY]: our five servers, each with an empty store, and the worker
# threads `herd up` would give each.
start_herd() {
    local i bin=${2:-$HERD}
    HERD_PIDS=()
    rm -rf "$TMP/data"
    for i in 0 1 2 3 4; do
        HERD_WORKERS=$UP_WORKERS "$bin" serve "${NAMES[$i]}" --config "$1" 2>>"$TMP/logs/ours.err" &
        STARTED+=($!)
        HERD_PIDS+=($!)
    done
    for i in 0 1 2 3 4; do wait_listening $((OURS_PORT + i)); done
}
start_ours() { start_herd "$TMP/herd.toml"; }
start_mem() { start_herd "$TMP/herd-mem.toml"; }
start_tls() { start_herd "$TMP/herd-tls.toml"; }
start_before() { start_herd "$TMP/herd.toml" "$BEFORE"; }
# start_alone NAME... WORKERS CONFIG: servers of CONFIG, each alone on its port (Hill on
# ours + 0, Smith on ours + 1) with WORKERS worker threads, each with an empty store.
start_alone() {
    local args=("$@") n=$(($# - 2)) i
    local workers=${args[$n]} config=${args[$((n + 1))]}
    HERD_PIDS=()
    # A WHATSAT run logs every 36 KB reply whole: gigabytes; the last run's are not needed.
    rm -rf "$TMP/data" "$TMP/logs/alone"
    for ((i = 0; i < n; i++)); do
        HERD_WORKERS=$workers "$HERD" serve "${args[$i]}" --config "$config" \
            2>>"$TMP/logs/ours.err" &
        STARTED+=($!)
        HERD_PIDS+=($!)
    done
    for ((i = 0; i < n; i++)); do wait_listening $((OURS_PORT + i)); done
}
start_one1() { start_alone Hill 1 "$TMP/alone.toml"; }
start_one2() { start_alone Hill 2 "$TMP/alone.toml"; }
# Three workers: the home thread serves no sessions, so its CPU is the store's (and the
# places fetcher's) alone, for the model of larger hosts.
start_one3() { start_alone Hill 3 "$TMP/alone.toml"; }
# The ceiling: two servers with nothing shared, not even a link.
start_apart() { start_alone Hill Smith 1 "$TMP/apart.toml"; }
# Two linked servers, for WHATSAT (its client is seeded at one and must reach both).
start_linked() { start_alone Hill Smith 1 "$TMP/linked.toml"; }
start_admin() {
    local i
    start_herd "$TMP/herd-admin.toml"
    for i in 0 1 2 3 4; do wait_listening $((ADMIN_PORT + i)); done
    scrape_every_second &
    STARTED+=($!)
    AUX_PIDS=($!)
}
# Reads every admin listener's /metrics once a second, as Prometheus would.
scrape_every_second() {
    local i
    while :; do
        for i in 0 1 2 3 4; do
            (exec 3<>"/dev/tcp/127.0.0.1/$((ADMIN_PORT + i))" &&
                printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
                cat <&3 >/dev/null) 2>/dev/null || true
        done
        sleep 1
    done
}
# scrape_admin TAG: every admin listener's /metrics once more, kept (HTTP head and all) as
# $TMP/out/metrics/TAG.NAME.prom: the counters of the whole run, for the store's line below
# the admin table.
scrape_admin() {
    local i
    mkdir -p "$TMP/out/metrics"
    for i in 0 1 2 3 4; do
        (exec 3<>"/dev/tcp/127.0.0.1/$((ADMIN_PORT + i))" &&
            printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
            cat <&3) >"$TMP/out/metrics/$1.${NAMES[$i]}.prom" 2>/dev/null || true
    done
}
# start_other KIND COMMAND...: a baseline herd, five of COMMAND NAME --base-port ... (the
# asyncio and the Node.js herds take the same command line) on the baseline's ports, which
# the two share (they never run at once), each logging to logs/KIND/NAME.log.
start_other() {
    local kind=$1 i
    shift
    HERD_PIDS=()
    mkdir -p "$TMP/logs/$kind"
    for i in 0 1 2 3 4; do
        "$@" "${NAMES[$i]}" --base-port "$BASE_PORT" \
            --places-url "http://127.0.0.1:$FAKE_PORT/maps/api/place/nearbysearch/json" \
            --log-file "$TMP/logs/$kind/${NAMES[$i]}.log" 2>>"$TMP/logs/$kind.err" &
        STARTED+=($!)
        HERD_PIDS+=($!)
    done
    for i in 0 1 2 3 4; do wait_listening $((BASE_PORT + i)); done
}
start_baseline() { start_other baseline python3 "$BASELINE/asyncio_herd.py"; }
start_node() { start_other node node "$BASELINE/node_herd.js"; }

# A few flood rounds until every server gets every check-in: the links are up (ours dial
# with backoff, the baseline's open on first use) before anything is measured.
warm_up() {
    local _
    for _ in $(seq 1 20); do
        if "$HERD" bench flood --servers "$1" --rounds 3 --json >"$TMP/out/warm.json" 2>/dev/null &&
            grep -q '"incomplete":0' "$TMP/out/warm.json"; then
            return 0
        fi
        sleep 0.5
    done
    echo "bench.sh: the herd at $1 never passed a flood round" >&2
    return 1
}

# thread_cpu PID: the CPU seconds so far of its home thread (the one whose id is the PID),
# of its worker threads (actix arbiters, named actix-rt|...), and of its other threads (the event log's writer,
# the journal's applier), on one line.
thread_cpu() {
    local tick task comm
    tick=$(getconf CLK_TCK)
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        # The name may hold spaces; the times are the 14th and 15th fields after it.
        sed 's/.*) //' "$task/stat" 2>/dev/null |
            awk -v id="${task##*/}" -v pid="$1" -v comm="$comm" -v tick="$tick" '{
                kind = (id == pid) ? "home" : (comm ~ /^actix-rt/ ? "workers" : "other")
                print kind, ($12 + $13) / tick
            }'
    done | awk '{ t[$1] += $2 } END { printf "%.2f %.2f %.2f\n", t["home"], t["workers"], t["other"] }'
}

# run_bench NAME KIND ARGS...: one `herd bench` run against a fresh herd of KIND (ours or
# baseline); its JSON line goes to $TMP/out/NAME.KIND.REP.json ({"failed":true} if it
# failed). In ARGS, @SERVERS@ is the herd's address list, @PIDS@ its PIDs, @HILL@ Hill's PID.
run_bench() {
    local name=$1 kind=$2 servers arg args=()
    shift 2
    "start_$kind"
    case $kind in
        baseline | node) servers=$BASE_SERVERS ;;
        one1 | one2 | one3) servers=127.0.0.1:$OURS_PORT ;;
        apart | linked) servers=127.0.0.1:$OURS_PORT,127.0.0.1:$((OURS_PORT + 1)) ;;
        *) servers=$OURS_SERVERS ;;
    esac
    # The links are what a warm-up waits for; a server alone, or servers apart, have none.
    case $kind in
        one1 | one2 | one3 | apart) ;;
        *) warm_up "$servers" ;;
    esac
    for arg in "$@"; do
        arg=${arg//@SERVERS@/$servers}
        arg=${arg//@PIDS@/$(IFS=,; echo "${HERD_PIDS[*]}")}
        arg=${arg//@HILL@/${HERD_PIDS[0]}}
        args+=("$arg")
    done
    echo "bench.sh: [$REP/$REPEAT] $name, $kind: herd bench ${args[*]}" >&2
    local threads_before
    threads_before=$(thread_cpu "${HERD_PIDS[0]}")
    if ! "$HERD" bench "${args[@]}" --json >"$TMP/out/$name.$kind.$REP.json"; then
        echo "bench.sh: $name against $kind failed" >&2
        echo '{"failed":true}' >"$TMP/out/$name.$kind.$REP.json"
    fi
    # The first server's CPU by thread over the run: home, workers, the rest.
    echo "$threads_before $(thread_cpu "${HERD_PIDS[0]}")" >"$TMP/out/$name.$kind.$REP.threads"
    for arg in "${HERD_PIDS[@]}"; do
        kill -0 "$arg" 2>/dev/null || echo "bench.sh: server PID $arg ($kind) exited during $name" >&2
    done
    if [ "$kind" = admin ]; then scrape_admin "$name.$kind.$REP"; fi
    stop "${HERD_PIDS[@]}" "${AUX_PIDS[@]}"
    AUX_PIDS=()
}

# startup KIND: five launches of one server of KIND, timed by `herd bench startup`.
startup() {
    local out=$TMP/out/startup.$1.$REP.json cmd
    if [ "$1" = ours ]; then
        rm -rf "$TMP/startup-data"
        cmd=("$HERD" serve Hill --config "$TMP/startup.toml")
        set -- "127.0.0.1:$STARTUP_OURS"
    else
        local run=(python3 "$BASELINE/asyncio_herd.py")
        [ "$1" = node ] && run=(node "$BASELINE/node_herd.js")
        cmd=("${run[@]}" Hill --base-port "$STARTUP_BASE"
            --places-url "http://127.0.0.1:$FAKE_PORT/maps/api/place/nearbysearch/json"
            --log-file "$TMP/logs/startup-$1.log")
        set -- "127.0.0.1:$STARTUP_BASE"
    fi
    echo "bench.sh: [$REP/$REPEAT] startup: ${cmd[*]}" >&2
    "$HERD" bench startup --servers "$1" --runs 5 --json -- "${cmd[@]}" >"$out" ||
        echo '{"failed":true}' >"$out"
}

# startup_store: five launches of one of our servers over a store of $STORE_RECORDS
# records, each timed until it answers a WHATSAT from its store.
# Each launch's resident memory comes with the figures, and with --store-file (which a
# BENCH_HERD of an older revision may not have) the store's size on disk.
startup_store() {
    local out=$TMP/out/startup_store.ours.$REP.json size=()
    rm -rf "$TMP/startup-data"
    if "$HERD" bench startup --help 2>/dev/null | grep -q -- --store-file; then
        size=(--store-file "$TMP/startup-data/Hill.db")
    fi
    echo "bench.sh: [$REP/$REPEAT] startup with $STORE_RECORDS records in the store" >&2
    "$HERD" bench startup --servers "127.0.0.1:$STARTUP_OURS" --runs 5 --json \
        --fill "$STORE_RECORDS" "${size[@]}" -- "$HERD" serve Hill --config "$TMP/startup.toml" \
        >"$out" || echo '{"failed":true}' >"$out"
}

KINDS=(ours)
[ "$HAVE_BASELINE" = 1 ] && KINDS+=(baseline)
[ "$HAVE_NODE" = 1 ] && KINDS+=(node)
STATS=()
[ "$HAVE_BASELINE" = 1 ] && STATS=(--places-stats "http://127.0.0.1:$FAKE_PORT/stats")
# Repeats go round all scenarios, so a burst of other work on the machine lands in one
# repeat of a scenario rather than in all of them; the table shows medians.
for REP in $(seq 1 "$REPEAT"); do
    for kind in "${KINDS[@]}" $(with mem tls admin) ${BEFORE:+before}; do
        selected iamat50 || continue
        run_bench iamat50 "$kind" iamat --servers @SERVERS@ --connections 50 \
            --duration "$DURATION" --pids @PIDS@
    done
    if selected workers; then
        for kind in one1 one2 apart one3; do
            # Servers apart never hold each other's records: no waiting for them to.
            settle=()
            [ "$kind" = apart ] && settle=(--settle 0.1)
            run_bench workers_iamat "$kind" iamat --servers @SERVERS@ --connections 50 \
                --duration "$DURATION" --pids @PIDS@ "${settle[@]}"
        done
        for kind in one1 one2 linked one3; do
            run_bench workers_whatsat "$kind" whatsat --servers @SERVERS@ --connections 10 \
                --duration "$DURATION" --pids @PIDS@
        done
    fi
    for kind in "${KINDS[@]}" $(with mem); do
        selected iamat1 || continue
        run_bench iamat1 "$kind" iamat --servers @SERVERS@ --connections 1 \
            --duration "$DURATION" --pids @PIDS@
    done
    for kind in "${KINDS[@]}"; do
        selected whatsat10 || continue
        run_bench whatsat10 "$kind" whatsat --servers @SERVERS@ --connections 10 \
            --duration "$DURATION" --pids @PIDS@ "${STATS[@]}"
    done
    for kind in "${KINDS[@]}" $(with tls); do
        selected flood || continue
        run_bench flood "$kind" flood --servers @SERVERS@ --at Hill --rounds "$ROUNDS"
    done
    for kind in "${KINDS[@]}"; do
        selected conns || continue
        run_bench conns "$kind" conns --servers @SERVERS@ --at Hill --connections "$IDLE" \
            --pid @HILL@
    done
    for kind in "${KINDS[@]}"; do
        selected startup || continue
        startup "$kind"
    done
    if selected startup_store; then startup_store; fi
done

# value FILE KEY: one value of a run's flat JSON line ("failed" if the run failed).
value() {
    if grep -q '"failed":true' "$1"; then echo failed; return 0; fi
    sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$1" | tr -d '"'
}

# get NAME KIND KEY: the median of one figure over the repeats ("failed" if every repeat
# failed, empty if there were none).
get() {
    local f v vals=() any=0
    for f in "$TMP/out/$1.$2".*.json; do
        [ -f "$f" ] || continue
        any=1
        v=$(value "$f" "$3")
        if [ -n "$v" ] && [ "$v" != failed ]; then vals+=("$v"); fi
    done
    if [ "${#vals[@]}" = 0 ]; then
        if [ "$any" = 1 ]; then echo failed; fi
        return 0
    fi
    printf '%s\n' "${vals[@]}" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# row SCENARIO FIGURE NAME KEY KIND LIMIT TARGET: one table row. KIND says how the target
# is judged: min_ratio / max_ratio (ours / baseline against LIMIT), max / equal (ours
# alone against LIMIT), or info (no target).
row() {
    local ours base node
    ours=$(get "$3" ours "$4")
    base=$(get "$3" baseline "$4")
    node=$(get "$3" node "$4")
    awk -v s="$1" -v f="$2" -v o="$ours" -v b="$base" -v k="$5" -v l="$6" -v t="$7" \
        -v have="$HAVE_BASELINE" -v n="$node" 'BEGIN {
        num = "^-?[0-9]+(\\.[0-9]+)?$"
        ratio = "-"; r = ""
        if (o ~ num && b ~ num && b + 0 != 0) {
            r = o / b
            ratio = (r >= 100) ? sprintf("%.0f", r) : sprintf("%.3g", r)
        }
        met = "-"
        if (k == "min_ratio" || k == "max_ratio") {
            if (have != 1) met = "n/a (no baseline)"
            else if (r != "") met = ((k == "min_ratio" && r >= l) || (k == "max_ratio" && r <= l)) ? "yes" : "**no**"
        } else if (k == "max" && o ~ num) {
            met = (o + 0 <= l + 0) ? "yes" : "**no**"
        } else if (k == "equal" && o ~ num) {
            met = (o + 0 == l + 0) ? "yes" : "**no**"
        }
        nratio = "-"
        if (o ~ num && n ~ num && n + 0 != 0) {
            nr = o / n
            nratio = (nr >= 100) ? sprintf("%.0f", nr) : sprintf("%.3g", nr)
        }
        if (o == "") o = "-"
        if (b == "") b = "-"
        if (n == "") n = "-"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, f, o, b, ratio, t, met, n, nratio
    }'
}

UPSTREAM="fake places, ${DELAY_MS} ms"
[ "$HAVE_BASELINE" = 1 ] || UPSTREAM="embedded places"
echo
echo "proxy-herd ($REVISION) vs the Python asyncio baseline and the Node.js herd, $(date -u '+%Y-%m-%d %H:%M UTC')," \
    "nproc $(nproc), CPU busy just before the runs $BUSY_BEFORE, ${DURATION} s per load run," \
    "$ROUNDS flood rounds, medians of $REPEAT runs"
echo
echo "| scenario | figure | ours | baseline | ratio | target | met? | Node.js | ours / Node.js |"
echo "|---|---|---|---|---|---|---|---|---|"
S="IAMAT, 50 conns over all 5"
row "$S" "check-ins/s" iamat50 check_ins_per_s min_ratio 4 ">= 4x"
row "$S" "herd CPU us per check-in" iamat50 herd_cpu_us_per_op max_ratio 0.2 "<= 1/5"
row "$S" "latency p50 ms" iamat50 p50_ms info "" ""
row "$S" "latency p99 ms" iamat50 p99_ms info "" ""
row "$S" "stale records after 5 s" iamat50 stale equal 0 "0"
S="IAMAT, 1 conn"
row "$S" "check-ins/s" iamat1 check_ins_per_s info "" ""
row "$S" "herd CPU us per check-in" iamat1 herd_cpu_us_per_op max_ratio 0.2 "<= 1/5"
row "$S" "latency p50 ms" iamat1 p50_ms info "" ""
# mem_row SCENARIO NAME KEY FIGURE: the same runs with the store off, for what durability
# costs.
mem_row() {
    local mem
    mem=$(get "$2" mem "$3")
    printf '| %s, store off | %s | %s | - | - | - | - | - | - |\n' "$1" "$4" "${mem:--}"
}
mem_row "IAMAT, 50 conns over all 5" iamat50 check_ins_per_s "check-ins/s"
mem_row "IAMAT, 50 conns over all 5" iamat50 herd_cpu_us_per_op "herd CPU us per check-in"
mem_row "IAMAT, 50 conns over all 5" iamat50 p50_ms "latency p50 ms"
mem_row "IAMAT, 1 conn" iamat1 check_ins_per_s "check-ins/s"
mem_row "IAMAT, 1 conn" iamat1 herd_cpu_us_per_op "herd CPU us per check-in"
mem_row "IAMAT, 1 conn" iamat1 p50_ms "latency p50 ms"
S="WHATSAT, 10 conns, $UPSTREAM"
row "$S" "replies/s" whatsat10 replies_per_s min_ratio 20 ">= 20x"
row "$S" "upstream calls per WHATSAT" whatsat10 upstream_calls_per_whatsat info "" "reported"
row "$S" "latency p50 ms" whatsat10 p50_ms info "" ""
row "$S" "herd CPU us per WHATSAT" whatsat10 herd_cpu_us_per_op info "" ""
S="flood, Hill to all 4 others"
row "$S" "p50 ms" flood p50_ms max_ratio 0.25 "<= 1/4"
row "$S" "p99 ms" flood p99_ms max_ratio 0.25 "<= 1/4"
row "$S" "max ms" flood max_ms info "" ""
S="$IDLE idle conns on Hill"
row "$S" "RSS bytes per idle conn" conns rss_bytes_per_idle_conn max 4096 "<= 4 KiB"
row "$S" "idle conns that answered" conns answered equal "$IDLE" "all $IDLE"
row "$S" "IAMAT RTT p99 ms meanwhile" conns probe_p99_ms info "" ""
row "start-up" "ms until accepting, max of 5" startup startup_ms_max max 50 "<= 50 ms"
S="start-up, $STORE_RECORDS records in the store"
row "$S" "ms until answering from it, max of 5" startup_store startup_ms_max max 5000 "< 5 s"
row "$S" "KiB resident once answering, max of 5" startup_store rss_kib_max info "" ""
row "$S" "peak KiB resident until then, max of 5" startup_store rss_peak_kib_max info "" ""
row "$S" "store file bytes" startup_store store_bytes info "" ""
row "$S" "its -wal file bytes" startup_store store_wal_bytes info "" ""

# tls_row SCENARIO FIGURE NAME KEY: ours on plain links, ours on TLS links, and TLS / plain.
tls_row() {
    local plain tls
    plain=$(get "$3" ours "$4")
    tls=$(get "$3" tls "$4")
    awk -v s="$1" -v f="$2" -v p="$plain" -v t="$tls" 'BEGIN {
        num = "^-?[0-9]+(\\.[0-9]+)?$"
        ratio = "-"
        if (p ~ num && t ~ num && p + 0 != 0) ratio = sprintf("%.3g", t / p)
        if (p == "") p = "-"
        if (t == "") t = "-"
        printf "| %s | %s | %s | %s | %s |\n", s, f, p, t, ratio
    }'
}

echo
echo "Peer links: ours with mutual TLS (TLS 1.3, rustls with ring) against ours with plain"
echo "links, both with the store, same run, medians of $REPEAT runs"
echo
echo "| scenario | figure | plain links | TLS links | TLS / plain |"
echo "|---|---|---|---|---|"
S="IAMAT, 50 conns over all 5"
tls_row "$S" "check-ins/s" iamat50 check_ins_per_s
tls_row "$S" "herd CPU us per check-in" iamat50 herd_cpu_us_per_op
tls_row "$S" "latency p50 ms" iamat50 p50_ms
tls_row "$S" "stale records after 5 s" iamat50 stale
S="flood, Hill to all 4 others"
tls_row "$S" "p50 ms" flood p50_ms
tls_row "$S" "p99 ms" flood p99_ms

# spread NAME KIND KEY: the lowest and highest of one figure over the repeats.
spread() {
    local f v vals=()
    for f in "$TMP/out/$1.$2".*.json; do
        [ -f "$f" ] || continue
        v=$(value "$f" "$3")
        if [ -n "$v" ] && [ "$v" != failed ]; then vals+=("$v"); fi
    done
    if [ "${#vals[@]}" = 0 ]; then echo "-"; return 0; fi
    printf '%s\n' "${vals[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo " - " hi }'
}

# admin_row FIGURE KEY: IAMAT-50 without and with admin listeners, each with its spread.
admin_row() {
    local without with
    without=$(get iamat50 ours "$2")
    with=$(get iamat50 admin "$2")
    awk -v f="$1" -v a="$without" -v b="$with" -v sa="$(spread iamat50 ours "$2")" \
        -v sb="$(spread iamat50 admin "$2")" 'BEGIN {
        num = "^-?[0-9]+(\\.[0-9]+)?$"
        ratio = (a ~ num && b ~ num && a + 0 != 0) ? sprintf("%.3f", b / a) : "-"
        printf "| %s | %s (%s) | %s (%s) | %s |\n", f, (a == "" ? "-" : a), sa, (b == "" ? "-" : b), sb, ratio
    }'
}

# store_line REP: commits, records committed, records per commit and the mean commit time of
# the admin herd's IAMAT-50 run REP, from its kept scrapes, with the run's check-ins, and how
# long commits held the servers' event loops (herd_store_loop_blocked_seconds).
store_line() {
    local files=("$TMP/out/metrics/iamat50.admin.$1".*.prom) check_ins
    if [ ! -f "${files[0]}" ]; then
        echo "- run $1: no scrape kept (the run failed?)"
        return 0
    fi
    check_ins=$(value "$TMP/out/iamat50.admin.$1.json" check_ins)
    awk -v rep="$1" -v servers="${#files[@]}" -v check_ins="${check_ins:-}" '
        $1 == "herd_store_commit_duration_seconds_count" { commits += $2 }
        $1 == "herd_store_commit_duration_seconds_sum" { seconds += $2 }
        $1 == "herd_store_committed_records_total" { records += $2 }
        $1 == "herd_store_commit_duration_seconds_bucket{le=\"0.0001\"}" { fast += $2 }
        $1 == "herd_store_commit_duration_seconds_bucket{le=\"0.001\"}" { ms += $2 }
        $1 == "herd_store_loop_blocked_seconds_count" { held += $2 }
        $1 == "herd_store_loop_blocked_seconds_bucket{le=\"2.5e-05\"}" { held_25us += $2 }
        $1 == "herd_store_loop_blocked_seconds_bucket{le=\"0.002\"}" { held_2ms += $2 }
        END {
            if (commits == 0) { printf "- run %s: no commits in the scrapes\n", rep; exit }
            printf "- run %s: %d commits, %d records committed, %.1f records/commit, mean commit %.3f ms (%.0f%% under 100 us, %.0f%% under 1 ms), %d servers", \
                rep, commits, records, records / commits, 1000 * seconds / commits, 100 * fast / commits, 100 * ms / commits, servers
            if (check_ins ~ /^[0-9]+$/ && check_ins > 0)
                printf "; %d check-ins, %.3f commits per check-in", check_ins, commits / check_ins
            if (held > 0)
                printf "; the event loop held by %d commits, %.1f%% of them under 25 us, %.2f%% under 2 ms", \
                    held, 100 * held_25us / held, 100 * held_2ms / held
            printf "\n"
        }' "${files[@]}"
}

if selected iamat50; then
    echo
    echo "The admin listener: IAMAT, 50 conns over all 5, ours without admin listeners and"
    echo "with one on every server scraped once a second, same run (medians, and the lowest -"
    echo "highest of the $REPEAT runs)"
    echo
    echo "| figure | without admin | with admin, scraped 1/s | with / without |"
    echo "|---|---|---|---|"
    admin_row "check-ins/s" check_ins_per_s
    admin_row "herd CPU us per check-in" herd_cpu_us_per_op
    admin_row "latency p50 ms" p50_ms
    admin_row "latency p99 ms" p99_ms
    if [ -n "$(with admin)" ]; then
        echo
        echo "The store in each admin run, from the five servers' /metrics read once more after"
        echo "it (summed over the servers; the counters include the warm-up's few check-ins):"
        echo
        for REP in $(seq 1 "$REPEAT"); do store_line "$REP"; done
    fi
fi

# workers_row FIGURE NAME KEY: one server with 1 and with 2 workers, and two servers.
workers_row() {
    local one two pair
    one=$(get "$2" one1 "$3")
    two=$(get "$2" one2 "$3")
    pair=$(get "$2" apart "$3")
    [ -n "$pair" ] || pair=$(get "$2" linked "$3")
    awk -v f="$1" -v a="$one" -v b="$two" -v c="$pair" -v sa="$(spread "$2" one1 "$3")" \
        -v sb="$(spread "$2" one2 "$3")" 'BEGIN {
        num = "^-?[0-9]+(\\.[0-9]+)?$"
        r2 = (a ~ num && b ~ num && a + 0 != 0) ? sprintf("%.3f", b / a) : "-"
        rc = (a ~ num && c ~ num && a + 0 != 0) ? sprintf("%.3f", c / a) : "-"
        printf "| %s | %s (%s) | %s (%s) | %s | %s | %s |\n", f, (a == "" ? "-" : a), sa, \
            (b == "" ? "-" : b), sb, r2, (c == "" ? "-" : c), rc
    }'
}

if selected workers; then
    echo
    echo "Every core: one server alone (store on), with workers = 1 and workers = 2, and the"
    echo "ceiling of this machine: two one-worker servers that share nothing, the same load"
    echo "spread over both (linked, for WHATSAT, so the seeded client reaches both). nproc"
    echo "$(nproc); the load generator shares the cores. Medians, and the lowest - highest of"
    echo "the $REPEAT runs"
    echo
    echo "| figure | workers = 1 | workers = 2 | 2 / 1 | two servers | two / 1 |"
    echo "|---|---|---|---|---|---|"
    workers_row "IAMAT-50 check-ins/s" workers_iamat check_ins_per_s
    workers_row "IAMAT-50 herd CPU us per check-in" workers_iamat herd_cpu_us_per_op
    workers_row "IAMAT-50 load generator CPU s" workers_iamat bench_cpu_s
    workers_row "IAMAT-50 latency p50 ms" workers_iamat p50_ms
    workers_row "WHATSAT-10 cached replies/s" workers_whatsat replies_per_s
    workers_row "WHATSAT-10 herd CPU us per reply" workers_whatsat herd_cpu_us_per_op
    workers_row "WHATSAT-10 load generator CPU s" workers_whatsat bench_cpu_s
    workers_row "WHATSAT-10 latency p50 ms" workers_whatsat p50_ms
fi

# per_op NAME KIND OPS_KEY: the CPU per operation, in us, of the home thread, the workers
# and the other threads of the first server, medians over the runs of NAME against KIND.
per_op() {
    local f n rep
    for f in "$TMP/out/$1.$2".*.threads; do
        [ -f "$f" ] || continue
        rep=${f%.threads}
        rep=${rep##*.}
        n=$(value "$TMP/out/$1.$2.$rep.json" "$3")
        [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || continue
        awk -v n="$n" '{ printf "%.2f %.2f %.2f\n", 1e6 * ($4 - $1) / n, 1e6 * ($5 - $2) / n, 1e6 * ($6 - $3) / n }' "$f"
    done | sort -g | awk '{ r[NR] = $0 } END { if (NR) print r[int((NR + 1) / 2)] }'
}

# model NAME OPS_KEY WHAT: what one server could take at 1 to 16 cores of its own (the
# clients elsewhere), from this run's costs. One worker: the measured CPU per operation of
# the workers = 1 runs, all of it on one core. Two: the workers = 2 runs' CPU per operation
# over both cores, and the home thread, which serves half the sessions, at S + W / 2. From
# three on the home thread serves none: each operation costs it S us, a worker W us and the
# other threads O us (the workers = 3 runs, by thread), the cores doing C / (S + W + O) in
# all. The other threads are the event log's writer and the journal's applier, one each:
# together they can do no more than 1 / O. The server takes the least of the three.
model() {
    local costs one two
    costs=$(per_op "$1" one3 "$2")
    one=$(get "$1" one1 herd_cpu_us_per_op)
    two=$(get "$1" one2 herd_cpu_us_per_op)
    if [ -z "$costs" ] || [ -z "$one" ] || [ -z "$two" ]; then
        echo "- $3: not every run to model from"
        return 0
    fi
    awk -v what="$3" -v c="$costs" -v one="$one" -v two="$two" 'BEGIN {
        split(c, x, " "); s = x[1]; w = x[2]; o = x[3]
        printf "- %s: with 3 workers, per operation, the home thread %.1f us, a worker %.1f us, the other threads %.1f us; with 1 worker %.1f us in all, with 2 %.1f us\n", what, s, w, o, one, two
        printf "\n| cores | workers | all cores, /s | home thread, /s | log writer and applier, /s | the server takes, /s | bound by |\n|---|---|---|---|---|---|---|\n"
        n = split("1 2 4 8 16", cores, " ")
        for (i = 1; i <= n; i++) {
            k = cores[i]
            if (k == 1) { all = 1e6 / one; home = all }
            else if (k == 2) { all = 2e6 / two; home = 1e6 / (s + w / 2) }
            else { all = 1e6 * k / (s + w + o); home = 1e6 / s }
            rest = (o > 0) ? 1e6 / o : 1e12
            take = all; by = "the cores"
            if (home < take) { take = home; by = "the store'"'"'s thread" }
            if (rest < take) { take = rest; by = "the log writer" }
            printf "| %d | %d | %.0f | %.0f | %.0f | %.0f | %s |\n", k, k, all, home, rest, take, by
        }
        printf "\n"
    }'
}

if selected workers; then
    echo
    echo "A model of one server alone on a host of its own (clients elsewhere), from the"
    echo "first server's CPU by thread in the workers = 3 runs (/proc/PID/task), medians:"
    echo
    model workers_iamat check_ins "IAMAT"
    model workers_whatsat replies "WHATSAT, cached"
fi

if [ -n "$BEFORE" ] && selected iamat50; then
    echo
    echo "The five-server herd, $UP_WORKERS worker thread(s) each (what herd up gives on"
    echo "$(nproc) cores), against the same herd of $("$BEFORE" --version) ($BENCH_BEFORE),"
    echo "same run: IAMAT, 50 conns over all 5, medians of $REPEAT runs"
    echo
    echo "| figure | before | ours | ours / before |"
    echo "|---|---|---|---|"
    for fk in "check-ins/s:check_ins_per_s" "herd CPU us per check-in:herd_cpu_us_per_op" \
        "latency p50 ms:p50_ms"; do
        b=$(get iamat50 before "${fk#*:}")
        o=$(get iamat50 ours "${fk#*:}")
        awk -v f="${fk%%:*}" -v b="$b" -v o="$o" 'BEGIN {
            num = "^-?[0-9]+(\\.[0-9]+)?$"
            r = (b ~ num && o ~ num && b + 0 != 0) ? sprintf("%.3f", o / b) : "-"
            printf "| %s | %s | %s | %s |\n", f, (b == "" ? "-" : b), (o == "" ? "-" : o), r
        }'
    done
fi

echo
echo "Raw \`herd bench --json\` lines:"
echo
echo '```'
for f in "$TMP"/out/*.*.*.json; do
    echo "$(basename "$f" .json) $(cat "$f")"
done
echo '```'
