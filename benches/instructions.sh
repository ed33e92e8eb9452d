#!/usr/bin/env bash
# Instructions per call, thread by thread, counted by callgrind: the
# hotline's own work, the same count on a noisy shared machine as on a
# quiet one. benches/cpu_per_call.sh measures time, which the machine's
# neighbours move by a fifth from one round to the next; a change that
# cuts a few per cent of the work shows here when the time cannot tell it
# from noise. Compare two builds with BIN.
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
{
    printf '[sip]\nlisten = "127.0.0.1:%s"\nanswer_after_ms = 0\n' "$PORT"
    printf 'trunks = ["127.0.0.1"]\nmax_calls = 4000\nmax_unconfirmed = 100000\n'
    printf 'max_unconfirmed_per_source = 100000\nmax_transactions = 1000000\n'
    printf '[sip.trunk_limits]\ninvite_per_second = 100000.0\ninvite_burst = 100000.0\n'
    printf 'register_per_second = 100.0\nregister_burst = 200.0\n'
    printf 'other_per_second = 400000.0\nother_burst = 400000.0\n'
    printf '[media]\nip = "127.0.0.1"\nrtp_port_min = 30000\nrtp_port_max = 59999\n'
    printf '[tickets]\nstore = "%s/events.db"\n[owners]\ndb = "%s/owners.db"\n' "$OUT" "$OUT"
    printf '[ivr]\nmenu = ""\n[http]\nlisten = "127.0.0.1:0"\n'
} >"$OUT/hotline.toml"
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
ok=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i } END { print $h["SuccessfulCall(C)"] + 0 }' "$OUT/calls.csv")
failed=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i } END { print $h["FailedCall(C)"] + 0 }' "$OUT/calls.csv")
[ "$ok" -gt 0 ] || { echo "no call completed: $OUT" >&2; exit 1; }
echo "$CALLS calls at $RATE/s under callgrind: $ok completed, $failed failed; instructions per completed call:"
# The dump made after zeroing: part 1 of each thread's file.
for f in "$OUT"/callgrind.out.1-*; do
    total=$(awk '/^summary:/ { print $2; exit }' "$f")
    [ -n "$total" ] && [ "$total" -gt 0 ] || continue
    # Named by the first of the hotline's own functions by inclusive count.
    name=$(callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null |
        grep -o 'hotline::[^ []*' | head -1 || true)
    awk -v t="$total" -v ok="$ok" -v name="${name:-(no hotline function)}" 'BEGIN { printf "  %10.0f  %s\n", t / ok, name }'
done | sort -rn
busiest= most=0
for f in "$OUT"/callgrind.out.1-*; do
    total=$(awk '/^summary:/ { print $2; exit }' "$f")
    if [ -n "$total" ] && [ "$total" -gt "$most" ]; then most=$total busiest=$f; fi
done
echo
echo "the busiest thread: its functions, children included (instructions per completed call)"
callgrind_annotate --inclusive=yes --threshold=100 "$busiest" 2>/dev/null |
    awk -v ok="$ok" '/^ *[0-9][0-9,]* / && /hotline::|tracing|alloc::|mi_|memcpy|hash/ {
        n = $1; gsub(",", "", n); $1 = ""; sub(/^ +\([ 0-9.]+%\) +/, ""); sub(/^ +/, "")
        sub(/^[^ ]*\.(rs|c|h|S):/, ""); sub(/ \[.*\]$/, "")
        if (!seen[$0]++) printf "  %10.0f  %s\n", n / ok, substr($0, 1, 110) }' | head -30
echo "(files: $OUT)"
