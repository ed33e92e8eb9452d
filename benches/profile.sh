#!/usr/bin/env bash
# Where a short call's CPU goes: perf samples of the hotline, thread by
# thread, while benches/cpu_per_call.sh (hotline alone, PEERS=0) offers
# its calls.
#
#   benches/profile.sh [RATE] [CALLS] [SECONDS]   # default 2000/s, 20000 calls, 7 s of samples
#
# The hotline is built with frame pointers (RUSTFLAGS, in a target
# directory of its own so the ordinary build is left alone): without them
# perf cannot walk the stacks of optimised code and only the leaf
# functions show. Prints each thread's share of the samples, split between
# the hotline's own code, libc and the kernel, then the functions each of
# the busiest threads spends its time under (children included: where a
# change would pay). perf.data stays in the output directory for
# `perf report -i`. Needs perf (Debian: linux-perf) and what
# cpu_per_call.sh needs; run as root or with kernel.perf_event_paranoid <= 1.
# Bounded in calls and time; ends only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-2000}
CALLS=${2:-20000}
SAMPLE_SECONDS=${3:-7}
command -v perf >/dev/null || { echo "perf not found: apt-get install -y linux-perf" >&2; exit 2; }
TARGET=${PROFILE_TARGET:-target/profile-fp}
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet
OUT=$(mktemp -d /tmp/hotline-profile.XXXXXX)
# A copy under a name of its own: its process is found by that name.
BIN="$OUT/hotline-profiled"
cp "$TARGET/release/hotline" "$BIN"
BENCH=
trap '[ -z "$BENCH" ] || kill "$BENCH" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
PEERS=0 BIN="$BIN" benches/cpu_per_call.sh "$RATE" "$CALLS" >"$OUT/cpu_per_call.out" 2>&1 &
BENCH=$!
pid=
for _ in $(seq 1 80); do
    pid=$(pgrep -f "^$BIN run" | head -1 || true)
    [ -n "$pid" ] && break
    sleep 0.25
done
[ -n "$pid" ] || { echo "the hotline did not start: $OUT/cpu_per_call.out" >&2; exit 1; }
# The calls start a moment after the hotline (cpu_per_call.sh waits 1.5 s).
sleep 2
perf record -q -F 999 --call-graph fp -p "$pid" -o "$OUT/perf.data" -- sleep "$SAMPLE_SECONDS" 2>"$OUT/perf.err"
wait "$BENCH" || true
BENCH=
grep -E "ok .* failed|^    " "$OUT/cpu_per_call.out" || true
echo
echo "samples by thread and by code (hotline, libc, kernel):"
perf report -i "$OUT/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null |
    awk '/%/ && $1 + 0 >= 0.5 { printf "  %7s  %-18s %s\n", $1, $2, $3 }'
for thread in $(perf report -i "$OUT/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
    awk '/%/ && $1 + 0 >= 5 { print $2 }'); do
    echo
    echo "$thread: the functions its time is spent under (share of all samples; children included)"
    perf report -i "$OUT/perf.data" --children --comm "$thread" --sort symbol --stdio -g none \
        --percent-limit 1.5 2>/dev/null |
        awk '/%/ && $0 !~ /thread_start|start_thread|call_once|__rust_begin_short_backtrace|enter_runtime|Scoped<T>::set|block_on|entry_SYSCALL|do_syscall_64/ {
            pct = $1; $1 = ""; $2 = ""; sub(/^ +\[[.k]\] /, ""); sub(/ +- +- *$/, ""); printf "  %7s  %s\n", pct, substr($0, 1, 110) }' |
        head -25
done
echo "(files: $OUT; perf report -i $OUT/perf.data)"
