#!/usr/bin/env bash
# CPU per call: the hotline's own CPU time (user + system, from /proc) for
# CALLS signalling-only calls at RATE (SIPp caller, BYE right after the ACK),
# divided by the calls. Compares builds: run it on two binaries alternately
# (the machine is shared, so take several pairs and quote medians).
#
#   benches/cpu_per_call.sh [BIN] [RATE] [CALLS]
#   BIN=/tmp/old-target/release/hotline LEGACY=1 benches/cpu_per_call.sh
#
# LEGACY=1 leaves out the [sip] keys a binary from before the edge guard
# does not know (trunks, limits). Bounded in calls and time; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${BIN:-./target/release/hotline}}
RATE=${2:-2000}
CALLS=${3:-20000}
PORT=${PORT:-29060}
[ -x "$BIN" ] || cargo build --release --quiet
OUT=$(mktemp -d /tmp/hotline-cpu.XXXXXX)
SCENARIO="$PWD/tests/scenarios/caller_hangup.xml"
{
    printf '[sip]\nlisten = "127.0.0.1:%s"\nanswer_after_ms = 0\n' "$PORT"
    if [ "${LEGACY:-0}" != 1 ]; then
        # SIPp stands for the carrier's trunk, with limits sized for the load.
        printf 'trunks = ["127.0.0.1"]\nmax_calls = 100000\nmax_unconfirmed = 100000\n'
        printf 'max_unconfirmed_per_source = 100000\nmax_transactions = 1000000\n'
        printf '[sip.trunk_limits]\ninvite_per_second = 100000.0\ninvite_burst = 100000.0\n'
        printf 'register_per_second = 100.0\nregister_burst = 200.0\n'
        printf 'other_per_second = 400000.0\nother_burst = 400000.0\n'
    fi
    printf '[media]\nip = "127.0.0.1"\nrtp_port_min = 30000\nrtp_port_max = 59999\n'
    printf '[tickets]\nstore = "%s/events.db"\n[owners]\ndb = "%s/owners.db"\n' "$OUT" "$OUT"
    printf '[ivr]\nmenu = ""\n[http]\nlisten = "127.0.0.1:0"\n'
} >"$OUT/hotline.toml"
"$BIN" run --config "$OUT/hotline.toml" >"$OUT/hotline.out" 2>"$OUT/hotline.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
sleep 1.5
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }
before=$(ticks)
(cd "$OUT" && sipp "127.0.0.1:$PORT" -sf "$SCENARIO" -s 100 \
    -i 127.0.0.1 -p $((PORT + 20)) -mp $((PORT + 30)) -cp $((PORT + 21)) -buff_size 4194304 \
    -r "$RATE" -m "$CALLS" -l $((RATE * 20)) -timeout 60s -nostdin -trace_screen >sipp.out 2>&1) || true
after=$(ticks)
ok=$(awk -F'|' '/Successful call/ {gsub(/ /,"",$3); print $3}' "$OUT"/*_screen.log 2>/dev/null | tail -1)
failed=$(awk -F'|' '/Failed call/ {gsub(/ /,"",$3); print $3}' "$OUT"/*_screen.log 2>/dev/null | tail -1)
[ -n "$ok" ] || { echo "sipp did not run: see $OUT/sipp.out" >&2; exit 1; }
echo "$BIN: $ok ok, $failed failed, $(( (after - before) * 1000000 / $(getconf CLK_TCK) / CALLS )) us of hotline CPU per call"
