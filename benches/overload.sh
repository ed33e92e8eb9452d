#!/usr/bin/env bash
# Overload: short calls offered faster than the hotline can take them.
#
#   benches/overload.sh [RATE] [SECONDS]     # default 3200 calls/s for 10 s
#   BIN=/tmp/old/hotline benches/overload.sh 3200
#
# RATE defaults to twice the clean rate benches/load.sh finds for short
# calls on a 2-core machine (1,600/s). SIPp stands for the carrier's trunk
# (tests/scenarios/caller_overload.xml): each call is either taken (answer,
# "#" by SIP INFO, the 2.7 s goodbye prompt, the hotline's BYE) or refused
# with 503, which SIPp acknowledges. The hotline runs with the caps on calls
# lifted (benches/load_config.sh), so what refuses is its own measure of
# being behind, not a configured number. What a graceful overload looks like:
# every taken call completes, every refused one got its 503 within 10 ms of
# the INVITE, none timed out.
#
# Prints the calls taken, refused and failed, the time to the 503 (median,
# p99, max and how many took over 10 ms, from SIPp's -trace_rtt), and the
# hotline's own count of shed calls by reason (/metrics). Bounded in calls
# and time; stops by itself; ends only the processes it started. Needs sipp
# (Debian: sip-tester).
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${1:-3200}
SECONDS_=${2:-10}
PORT=${PORT:-27060}
HTTP=${HTTP:-27080}
BIN=${BIN:-./target/release/hotline}
command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 2; }
[ "$BIN" != ./target/release/hotline ] || cargo build --release --quiet
OUT=$(mktemp -d /tmp/hotline-overload.XXXXXX)
. benches/load_config.sh
load_config "$OUT/hotline.toml" "$PORT" "$OUT" "$HTTP"

"$BIN" run --config "$OUT/hotline.toml" >"$OUT/hotline.out" 2>"$OUT/hotline.log" &
HOTLINE=$!
trap 'kill $HOTLINE 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$HTTP/metrics" >/dev/null 2>&1 && break
    sleep 0.2
done

CALLS=$((RATE * SECONDS_))
SCENARIO=$PWD/tests/scenarios/caller_overload.xml
echo "offering $CALLS short calls at $RATE/s (output in $OUT)" >&2
(cd "$OUT" && sipp "127.0.0.1:$PORT" -sf "$SCENARIO" -s 100 \
    -i 127.0.0.1 -p $((PORT + 20)) -mp $((PORT + 30)) -cp $((PORT + 21)) -buff_size 4194304 \
    -r "$RATE" -m "$CALLS" -l $((RATE * 20)) -timeout $((SECONDS_ * 3 + 40))s \
    -trace_rtt -rtt_freq 1 -nostdin -trace_screen -trace_err >sipp.out 2>&1) || true
curl -fs "http://127.0.0.1:$HTTP/metrics" >"$OUT/metrics.txt" || true
kill $HOTLINE
wait $HOTLINE || true

screen() { awk -F'|' -v row="$1" '$0 ~ row {gsub(/ /,"",$3); print $3}' "$OUT"/*_screen.log | tail -1; }
OK=$(screen "Successful call")
FAILED=$(screen "Failed call")
# One line per refused call: its time from the INVITE to the 503, in ms.
RTT=$(ls "$OUT"/*_rtt.csv 2>/dev/null | head -1 || true)
python3 - "$RTT" "${OK:-0}" "${FAILED:-0}" "$CALLS" "$OUT/metrics.txt" <<'EOF'
import sys, json, re
rtt, ok, failed, calls, metrics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
times = []
if rtt:
    for line in open(rtt):
        f = line.strip().split(';')
        if len(f) >= 3 and f[2] == 'refused':
            times.append(float(f[1]))
times.sort()
q = lambda p: times[min(len(times) - 1, int(p * len(times)))] if times else 0.0
refused = len(times)
shed = {}
try:
    for line in open(metrics):
        m = re.match(r'hotline_calls_shed_total\{reason="([^"]+)"\} (\S+)', line)
        if m:
            shed[m.group(1)] = int(float(m.group(2)))
except FileNotFoundError:
    pass
over = sum(1 for t in times if t > 10.0)
print(f"offered {calls}: taken and completed {ok - refused}, refused with 503 {refused}, failed {failed}")
print(f"time to 503: median {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {times[-1] if times else 0:.1f} ms, over 10 ms: {over}")
print(f"shed by the hotline: {shed}")
print(json.dumps({"offered": calls, "completed": ok - refused, "refused": refused, "failed": failed,
                  "refused_ms_median": q(0.5), "refused_ms_p99": q(0.99), "refused_over_10ms": over,
                  "shed": shed}))
EOF
