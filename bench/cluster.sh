#!/usr/bin/env bash
# bench/cluster.sh - mxjail nodes sharing state through Redis: ban propagation
# latency between two nodes (p50/p99) and policy throughput of a node that
# shares greylist and rate limits through Redis versus one with local state only.
#
#   bench/cluster.sh [-n BANS] [-d SECONDS] [-b BUILD_DIR]
#
# A redis-server is started by hand on a free loopback port (no persistence),
# two `mxjail run --backend null` nodes A and B join it. N bans are made on A
# through the control socket, 20 ms apart; the latency of one ban is the time
# between A's "[sshd] Ban ADDR" log line and B's "cluster: ban ADDR from node
# A" line (same clock, millisecond log stamps), so the CLI round trip is not
# counted. Then tests/tools/policy_load runs its closed-loop mix (60% new
# triplets, 30% retries, 10% whitelisted) against A (greylist and rate limits
# shared: every state change is one EVAL) and against a third node C with the
# same policy configuration and no [cluster] section. Printed, not asserted.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
N=200
DUR=5
BUILD=${BUILD:-$SRC/build}
while getopts "n:d:b:" o; do
    case $o in
        n) N=$OPTARG ;;
        d) DUR=$OPTARG ;;
        b) BUILD=$OPTARG ;;
        *) echo "usage: $0 [-n BANS] [-d SECONDS] [-b BUILD_DIR]" >&2; exit 2 ;;
    esac
done
MX=$BUILD/mxjail
PL=$BUILD/tests/tools/policy_load
[ -x "$MX" ] || { echo "no $MX: build first (cmake --build $BUILD)" >&2; exit 1; }
[ -x "$PL" ] || cmake --build "$BUILD" --target policy_load >/dev/null
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
[ -x "$REDIS" ] || { echo "redis-server missing: apt-get install redis-server" >&2; exit 1; }

W=$(mktemp -d /tmp/mxjail-bench-cluster.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
json_field() { sed -n 's/^JSON //p' | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

RPORT=$(free_port)
"$REDIS" --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$W" \
    --daemonize no >"$W/redis.log" 2>&1 &
PIDS+=("$!")
wait_port "$RPORT" || { cat "$W/redis.log" >&2; exit 1; }
printf '10.99.0.0/16\n' > "$W/wl_clients"
printf 'postmaster@\n' > "$W/wl_recipients"

# node NAME CLUSTER(0|1) -> starts it; sets PORT_<NAME>
node() {
    local name=$1 cl=$2 d=$W/$1 port
    port=$(free_port)
    mkdir -p "$d/state"
    cp -r "$SRC/etc" "$d/conf"
    : > "$d/auth.log"
    cat > "$d/conf/jail.local" <<EOF
[DEFAULT]
bantime = 1h
ignoreip = 127.0.0.1/8
[sshd]
enabled = true
logpath = $d/auth.log
backend = polling
EOF
    cat > "$d/conf/mxjail.conf" <<EOF
[mxjail]
statedir = $d/state
socket = $d/mxjail.sock
[policy]
enabled = yes
listen = inet:127.0.0.1:$port
[greylist]
delay = 1
whitelist_clients = $W/wl_clients
whitelist_recipients = $W/wl_recipients
[ratelimit]
clients = client_address: 1000000 requests / 1h
senders = sender_domain: 1000000 requests / 1h
EOF
    if [ "$cl" = 1 ]; then
        cat >> "$d/conf/mxjail.conf" <<EOF
[cluster]
redis = redis://127.0.0.1:$RPORT/0
node = $name
share = bans greylist ratelimit
EOF
    fi
    "$MX" run -c "$d/conf" -f --backend null --logtarget "$d/mxjail.log" --loglevel INFO \
        >"$d/stdout" 2>&1 &
    PIDS+=("$!")
    eval "PID_$name=$!"
    eval "PORT_$name=$port"
    wait_port "$port" || { cat "$d/stdout" "$d/mxjail.log" >&2; exit 1; }
}

node A 1
node B 1
node C 0
for _ in $(seq 1 100); do
    "$MX" status -s "$W/B/mxjail.sock" | grep -q "Cluster:.*: connected" && break
    sleep 0.1
done

echo "== ban propagation A -> B: $N bans, 20 ms apart"
for i in $(seq 1 "$N"); do
    "$MX" ban sshd "10.200.$((i / 250)).$((i % 250 + 1))" -s "$W/A/mxjail.sock" >/dev/null
    sleep 0.02
done
for _ in $(seq 1 100); do
    [ "$(grep -c 'cluster: ban .* from node A' "$W/B/mxjail.log" || true)" -ge "$N" ] && break
    sleep 0.1
done
PROP=$(python3 - "$W/A/mxjail.log" "$W/B/mxjail.log" <<'EOF'
import re, sys, datetime
def stamps(path, pat):
    out = {}
    for line in open(path, errors="replace"):
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", line)
        k = re.search(pat, line)
        if m and k:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            out.setdefault(k.group(1), t + int(m.group(2)) / 1000)
    return out
a = stamps(sys.argv[1], r"\[sshd\] Ban (\S+)")
b = stamps(sys.argv[2], r"cluster: ban (\S+) from node A")
lat = sorted((b[k] - a[k]) * 1000 for k in a if k in b)
if not lat:
    print("0 0 0 0"); sys.exit()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(len(lat), "%.1f" % p(0.5), "%.1f" % p(0.99), "%.1f" % lat[-1])
EOF
)
read -r GOT P50 P99 MAX <<<"$PROP"
echo "arrived on B: $GOT/$N; latency p50 ${P50} ms, p99 ${P99} ms, max ${MAX} ms (1 ms log resolution)"

echo "== policy throughput, closed loop, 16 connections, ${DUR}s each"
run_closed() { "$PL" -H 127.0.0.1 -p "$1" -c 16 -T 2 -d "$DUR" -w 1 --mix 60:30:10 --retry-age 2 \
                  --wl-net 10.99.0.0/16 --pid "$2" --seed 7; }
LOUT=$(run_closed "$PORT_C" "$PID_C")
ROUT=$(run_closed "$PORT_A" "$PID_A")
L_RPS=$(json_field rps <<<"$LOUT"); R_RPS=$(json_field rps <<<"$ROUT")
L_P99=$(json_field p99_us <<<"$LOUT"); R_P99=$(json_field p99_us <<<"$ROUT")
printf '%-28s %12s %12s\n' node "req/s" "p99 (us)"
printf '%-28s %12.0f %12.0f\n' "local state (no cluster)" "$L_RPS" "$L_P99"
printf '%-28s %12.0f %12.0f\n' "Redis cluster (shared)" "$R_RPS" "$R_P99"
RATIO=$(python3 -c "print(f'{$R_RPS / max($L_RPS, 1e-9):.2f}')")
"$MX" status -s "$W/A/mxjail.sock" | grep Cluster: || true
echo "RESULT bans=$GOT/$N p50_ms=$P50 p99_ms=$P99 local_rps=$L_RPS redis_rps=$R_RPS ratio=$RATIO"
