#!/usr/bin/env bash
# Instructions per call, thread by thread, counted by callgrind: the
# hotline's own work, which the machine's neighbours do not change.
# benches/cpu_per_call.sh measures time, which they move by a fifth from
# one round to the next; this count moves by 2-3 % between runs (timers
# and batches still follow the clock), so a change that cuts 5 % of the
# work shows here when the time cannot tell it from noise. Compare two
# builds with BIN, a run or two each.
#
#   benches/instructions.sh [CALLS] [RATE]        # default 1000 calls at 50/s
#   BIN=/tmp/old/hotline benches/instructions.sh  # another build
#
# The hotline (release build) runs under valgrind --tool=callgrind, some
# fifty times slower than on its own, hence the low rate. SIPp places
# WARMUP (300) unmeasured calls, the counters are zeroed, then CALLS calls
# of the line test (tests/scenarios/caller_hangup.xml, as in
# cpu_per_call.sh: BYE right after the ACK), then the counts are dumped.
# Prints each thread's instructions per completed call, named by the
# hotline function it spends them under, then the busiest thread's
# functions (children included). What the kernel does for a call (system
# calls, wake-ups) and what cache misses cost are not instructions of the
# process: cpu_per_call.sh and profile.sh show those. Needs valgrind
# (Debian: valgrind) and sipp. Bounded in calls and time; ends only the
# processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-1000}
RATE=${2:-50}
WARMUP=${WARMUP:-300}
PORT=${PORT:-29160}
BIN=${BIN:-./target/release/hotline}
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 2; }
command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 2; }
[ "$BIN" != ./target/release/hotline ] || cargo build --release --quiet
OUT=$(mktemp -d /tmp/hotline-instructions.XXXXXX)
HOTLINE=
trap '[ -z "$HOTLINE" ] || kill "$HOTLINE" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
# The configuration of the rate benches, with max_calls as cpu_per_call.sh
# has it: a cap the open-files limit can hold leaves room for the sockets
# of freed ports, kept bound for their next call, as in a deployment.
. benches/load_config.sh
MAX_CALLS=4000 load_config "$OUT/hotline.toml" "$PORT" "$OUT"
# One file per thread; names written out whole, so that a dump made after
# zeroing reads on its own.
valgrind --tool=callgrind --separate-threads=yes --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$OUT/callgrind.out" "$BIN" run --config "$OUT/hotline.toml" \
    >"$OUT/hotline.out" 2>"$OUT/hotline.log" &
HOTLINE=$!
# Up once its log is replayed (valgrind takes seconds to start it).
for _ in $(seq 1 120); do
    grep -q "ticket log replayed" "$OUT/hotline.log" 2>/dev/null && break
    kill -0 "$HOTLINE" 2>/dev/null || { echo "the hotline did not start: $OUT/hotline.log" >&2; exit 1; }
    sleep 0.5
done
sleep 2
SCENARIO="$PWD/tests/scenarios/caller_hangup.xml"
calls() { # calls N: N calls at RATE; the scenario's statistics in calls.csv
    rm -f "$OUT/calls.csv"
    (cd "$OUT" && timeout $((${1} / RATE + 120)) sipp "127.0.0.1:$PORT" \
        -sf "$SCENARIO" -s 100 -i 127.0.0.1 -p $((PORT + 20)) \
        -r "$RATE" -m "$1" -timeout $((${1} / RATE + 60))s -nostdin -trace_stat -stf calls.csv -fd 1 \
        >sipp.out 2>&1) || true
}
calls "$WARMUP"
callgrind_control -z "$HOTLINE" >/dev/null 2>&1
calls "$CALLS"
callgrind_control -d "$HOTLINE" >/dev/null 2>&1
sleep 1
kill "$HOTLINE"
wait "$HOTLINE" 2>/dev/null || true
HOTLINE=
# SIPp's count of one column of its statistics.
stat() { awk -F';' -v col="$1" 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i } END { print $h[col] + 0 }' "$OUT/calls.csv"; }
ok=$(stat "SuccessfulCall(C)")
failed=$(stat "FailedCall(C)")
[ "$ok" -gt 0 ] || { echo "no call completed: $OUT" >&2; exit 1; }
echo "$CALLS calls at $RATE/s under callgrind: $ok completed, $failed failed; instructions per completed call:"
# The dump made after zeroing: part 1 of each thread's file. Each thread
# named by the first of the hotline's own functions by inclusive count.
for f in "$OUT"/callgrind.out.1-*; do
    total=$(awk '/^summary:/ { print $2; exit }' "$f")
    [ -n "$total" ] && [ "$total" -gt 0 ] || continue
    name=$(callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
        grep -o 'hotline::[^ []*' | head -1 || true)
    echo "$total $f ${name:-(no hotline function)}"
done | sort -rn >"$OUT/threads"
awk -v ok="$ok" '{ n = $1; $1 = ""; $2 = ""; sub(/^ +/, ""); printf "  %10.0f  %s\n", n / ok, $0 }' "$OUT/threads"
busiest=$(awk 'NR == 1 { print $2 }' "$OUT/threads")
echo
echo "the busiest thread: its functions, children included (instructions per completed call)"
callgrind_annotate --inclusive=yes --threshold=100 "$busiest" 2>/dev/null |
    awk -v ok="$ok" '/^ *[0-9][0-9,]* / && /hotline::|tracing|alloc::|mi_|memcpy|hash/ {
        n = $1; gsub(",", "", n); $1 = ""; sub(/^ +\([ 0-9.]+%\) +/, ""); sub(/^ +/, "")
        sub(/^[^ ]*\.(rs|c|h|S):/, ""); sub(/ \[.*\]$/, "")
        if (!seen[$0]++) printf "  %10.0f  %s\n", n / ok, substr($0, 1, 110) }' | head -30
echo "(files: $OUT)"
