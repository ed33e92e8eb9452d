#!/usr/bin/env bash
# A cluster's takeover with a busy day in the log: how long from kill -9 of
# the active node to the standby answering, and how much of it is the node
# starting (the rest is the lease running out).
#
#   benches/takeover.sh [CALLS] [KILLS]        # default 60000 calls, 5 kills
#   BIN=/tmp/old/hotline benches/takeover.sh   # another build
#   PG=postgres://user:pw@127.0.0.1:5432/postgres benches/takeover.sh
#
# PG (default $HOTLINE_TEST_POSTGRES, which tests/run.sh sets up) must be
# a role that may create databases: the bench makes one of its own and
# drops it at the end. Node a starts on it and becomes active; CALLS calls
# (six events each: started, queued, offered, answered, an agent's state,
# ended) are written into the log's last day; node b starts standby. Once
# b says it follows the log's last day (a build from before standbys
# followed the log never does: it is given 30 s), the active node is
# killed (-9) and
# the standby's OPTIONS are probed every 20 ms until one is answered 200.
# The killed node is started again as the next standby, and so KILLS times.
# Each kill prints the time to 200, the time from the lease (the new node's
# "active" line) to serving (its first line after binding), and the
# standby's RSS before the kill. Lease: 3 s.
#
# Bounded: KILLS takeovers, each given 20 s; ends only the processes it
# started. Needs psql (postgresql-client) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS=${1:-60000}
KILLS=${2:-5}
PG=${PG:-${HOTLINE_TEST_POSTGRES:?set PG or HOTLINE_TEST_POSTGRES to a postgres:// URL of a role that may create databases}}
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/hotline
fi
WORK=$(mktemp -d /tmp/hotline-takeover.XXXXXX)
DB="hotline_takeover_$$"
BASE_URL=${PG%/*}
URL="$BASE_URL/$DB"
declare -A PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$PG" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE DATABASE $DB" >/dev/null

# node NAME SIP_PORT: its config.
for n in a:15100 b:15300; do
    name=${n%:*} port=${n#*:}
    cat > "$WORK/$name.toml" <<EOF
[sip]
listen = "127.0.0.1:$port"
trunks = ["127.0.0.1"]
[media]
ip = "127.0.0.1"
rtp_port_min = $((port * 2))
rtp_port_max = $((port * 2 + 100))
[http]
listen = "127.0.0.1:$((port + 1))"
[tickets]
store = "$URL"
[owners]
db = "$WORK/owners-$name.db"
[cluster]
node = "$name"
lease_seconds = 3
EOF
done
declare -A PORT=([a]=15100 [b]=15300)

start() { # NAME: started standby or active, its log from scratch
    RUST_LOG=info HOTLINE_LOG_FLUSH_MS=0 "$BIN" run --config "$WORK/$1.toml" > "$WORK/$1.log" 2>&1 &
    PIDS[$1]=$!
}

options() { # PORT: the status an OPTIONS is answered with, or none
    python3 - "$1" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.3)
me = s.getsockname()[1]
n = time.time_ns()
m = (f"OPTIONS sip:100@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKt{n}\r\n"
     f"From: <sip:bench@127.0.0.1>;tag={n}\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: takeover-{n}\r\n"
     "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
s.sendto(m.encode(), ("127.0.0.1", port))
try:
    print(s.recv(2048)[8:11].decode())
except OSError:
    print("none")
EOF
}

wait_log() { # NAME TEXT SECONDS
    local end=$((SECONDS + $3))
    until grep -q "$2" "$WORK/$1.log"; do
        [ $SECONDS -lt $end ] || { echo "takeover.sh: node $1 never said '$2':" >&2; tail -20 "$WORK/$1.log" >&2; exit 1; }
        sleep 0.1
    done
}

ms_of() { # a log line's timestamp as Unix ms
    date -d "$(echo "$1" | cut -d' ' -f1)" +%s%3N
}

start a
wait_log a "this node is active" 20
now=$(date +%s%3N)
psql "$URL" -q <<EOF
INSERT INTO events (id, ticket, call, at_ms, actor, kind, body)
SELECT (SELECT coalesce(max(id), 0) FROM events) + n * 6 + k + 1, NULL, 'bench-' || n,
  $now - 82800000 + n * (82800000 / $CALLS) + k * 1000, '{"kind":"system"}'::jsonb,
  (ARRAY['call_started','call_queued','call_offered','call_answered','agent_state_changed','call_ended'])[k + 1],
  (ARRAY['{"type":"call_started","from":"sip:13800138000@127.0.0.1","to":"sip:100@127.0.0.1","number":"13800138000"}',
         '{"type":"call_queued","queue":"general","priority":0}',
         '{"type":"call_offered","agent":"2001"}',
         '{"type":"call_answered","agent":"2001","waited_ms":2000}',
         '{"type":"agent_state_changed","agent":"2001","state":"available"}',
         '{"type":"call_ended","reason":"caller_hung_up"}'])[k + 1]::jsonb
FROM generate_series(0, $CALLS - 1) n, generate_series(0, 5) k;
EOF
echo "log: $((CALLS * 6)) events of $CALLS calls in the last day; $BIN"

active=a standby=b
start b
totals=()
for i in $(seq 1 "$KILLS"); do
    wait_log "$standby" "answers 503 until this node holds the lease" 20
    # Once it has the day (a build from before standbys followed the log
    # never says so: it is given 30 s).
    end=$((SECONDS + 30))
    until grep -q "following the log's last day" "$WORK/$standby.log"; do
        [ $SECONDS -lt $end ] || break
        sleep 0.1
    done
    rss=$(awk '/VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/${PIDS[$standby]}/status")
    kill -9 "${PIDS[$active]}"
    wait "${PIDS[$active]}" 2>/dev/null || true
    killed=$(date +%s%3N)
    until [ "$(options "${PORT[$standby]}")" = "200" ]; do
        [ $(( $(date +%s%3N) - killed )) -lt 20000 ] || { echo "takeover.sh: no takeover by $standby" >&2; tail -20 "$WORK/$standby.log" >&2; exit 1; }
        sleep 0.02
    done
    total=$(( $(date +%s%3N) - killed ))
    lease=$(grep "this node is active" "$WORK/$standby.log" | tail -1)
    serving=$(grep "freed RTP ports stay bound" "$WORK/$standby.log" | tail -1)
    start_ms=$(( $(ms_of "$serving") - $(ms_of "$lease") ))
    printf 'kill %d: %s took over in %d ms (lease to serving %d ms; standby RSS before %s)\n' \
        "$i" "$standby" "$total" "$start_ms" "$rss"
    totals+=("$total")
    # The killed node comes back as the next standby.
    start "$active"
    tmp=$active active=$standby standby=$tmp
done
median=$(printf '%s\n' "${totals[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "median kill -9 to OPTIONS 200: $median ms over $KILLS kills ($CALLS calls a day in the log)"
