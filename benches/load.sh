#!/usr/bin/env bash
# Load: the highest call rate with 0 failed calls.
#
#   benches/load.sh                # default ramp
#   RATES="100 200 400" STEP_SECONDS=10 benches/load.sh
#   BIN=/tmp/old/hotline RATES=1500 benches/load.sh   # another build
#
# Two runs on 127.0.0.1, each a ramp of call rates (STEP_SECONDS of calls at
# each rate, stopping at the first rate with a failed call):
#   1. SIPp caller -> hotline (release build): short calls with a prompt
#      (tests/scenarios/caller_short.xml: answer, "#" by SIP INFO, the
#      hotline plays its goodbye prompt (2.7 s of RTP) and hangs up);
#   2. SIPp's built-in UAC -> SIPp's built-in UAS, the same machine's
#      ceiling for SIPp itself.
# and, for context, SIPp -> hotline with signalling only
# (tests/scenarios/caller_hangup.xml: BYE right after the ACK, no prompt
# played out), the call shape closest to SIPp's UAS, which sends no RTP.
# Prints the highest clean rate of each and the ratios, and whether the
# machine could carry the first rate the hotline did not take cleanly at
# all: a bare sender (benches/bare_sender.rs) alone on one core with as
# many streams as that rate keeps playing (below 50 packets a stream a
# second, the media alone needs more than a core on this machine). Every
# run is bounded in calls (-m) and time (-timeout) and stops by itself.
# Needs sipp (Debian: sip-tester). The machine is shared: quote medians of
# several runs.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"100 200 300 400 500 600 700 800 900 1000 1200 1600 2000 3000 4000 6000 8000 10000 12000"}
STEP_SECONDS=${STEP_SECONDS:-10}
SIP_PORT=${SIP_PORT:-25060}
UAS_PORT=${UAS_PORT:-25070}
OUT=${OUT:-$(mktemp -d /tmp/hotline-load.XXXXXX)}
BUF="-buff_size 4194304"

command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 2; }
BIN=${BIN:-./target/release/hotline}
[ "$BIN" != ./target/release/hotline ] || cargo build --release --quiet
mkdir -p "$OUT"

. benches/load_config.sh
load_config "$OUT/hotline.toml" "$SIP_PORT" "$OUT"

# run_rate NAME TARGET RATE ARGS... -> prints "successful failed wall_seconds"
run_rate() {
    local name=$1 target=$2 rate=$3
    shift 3
    local calls=$((rate * STEP_SECONDS)) dir="$OUT/$name-$rate"
    mkdir -p "$dir"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && sipp "$target" "$@" -i 127.0.0.1 -p $((SIP_PORT + 20)) -mp $((SIP_PORT + 30)) \
        -cp $((SIP_PORT + 21)) $BUF -r "$rate" -m "$calls" -l $((rate * 20)) \
        -timeout $((STEP_SECONDS * 3 + 40))s -nostdin -trace_screen -trace_err >sipp.out 2>&1) || true
    end=$(date +%s.%N)
    local ok failed
    ok=$(awk -F'|' '/Successful call/ {gsub(/ /,"",$3); print $3}' "$dir"/*_screen.log | tail -1)
    failed=$(awk -F'|' '/Failed call/ {gsub(/ /,"",$3); print $3}' "$dir"/*_screen.log | tail -1)
    echo "${ok:-0} ${failed:-unknown} $(echo "$end - $start" | bc)"
}

# ramp NAME TARGET ARGS... -> highest clean rate on stdout, progress on stderr
ramp() {
    local name=$1 target=$2 best=0
    shift 2
    for rate in $RATES; do
        read -r ok failed wall < <(run_rate "$name" "$target" "$rate" "$@")
        printf '  %-8s rate %5s cps: %6s ok, %6s failed, %6.1f s\n' "$name" "$rate" "$ok" "$failed" "$wall" >&2
        if [ "$failed" != "0" ] || [ "$ok" != "$((rate * STEP_SECONDS))" ]; then
            break
        fi
        best=$rate
    done
    echo "$best"
}

echo "hotline under load (output in $OUT)" >&2
"$BIN" run --config "$OUT/hotline.toml" >"$OUT/hotline.out" 2>"$OUT/hotline.log" &
HOTLINE=$!
trap 'kill $HOTLINE 2>/dev/null || true' EXIT
sleep 1
HOTLINE_BEST=$(ramp hotline "127.0.0.1:$SIP_PORT" -sf "$PWD/tests/scenarios/caller_short.xml" -s 100)
SIGNALLING_BEST=$(ramp signalling "127.0.0.1:$SIP_PORT" -sf "$PWD/tests/scenarios/caller_hangup.xml" -s 100)
kill $HOTLINE
wait $HOTLINE || true
grep "hotline stopped" "$OUT/hotline.log" >&2 || true

# Whether this machine could carry the first rate the hotline did not take
# cleanly (or the last it took) at all: as many streams as that rate keeps
# playing (calls a second times the goodbye prompt's length), sent for 5 s
# by benches/bare_sender.rs alone, one socket a stream, on one core.
AT=$(for r in $RATES; do [ "$r" -gt "$HOTLINE_BEST" ] && { echo "$r"; break; }; done || true)
AT=${AT:-$HOTLINE_BEST}
PROMPT_SECONDS=$(python3 -c 'import wave; w = wave.open("prompts/goodbye_en.wav"); print(f"{w.getnframes() / w.getframerate():.3f}")')
STREAMS=$(echo "$AT * $PROMPT_SECONDS / 1" | bc)
CEILING=
BARE=$(benches/bare_sender_bin.sh)
if [ -n "$BARE" ] && [ "$STREAMS" -gt 0 ]; then
    CEILING=$("$BARE" "$STREAMS" 5 2>/dev/null | awk '
        /^packets/ { gsub(/\(/, "", $3); rate = $3 }
        /^cpu_seconds/ { cpu = $2 }
        /^us_per_packet/ { us = $2 }
        END { printf "%s of 50 packets a stream a second, %s us a packet, %.0f %% of a core", rate, us, cpu * 100 / 5 }')
fi

echo "SIPp built-in UAC against SIPp built-in UAS" >&2
(cd "$OUT" && sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -cp $((UAS_PORT + 1)) -mp $((UAS_PORT + 2)) $BUF \
    -nostdin -bg >uas.out 2>&1) || true  # sipp -bg exits non-zero in the parent
UAS=$(pgrep -f "sipp -sn uas -i 127.0.0.1 -p $UAS_PORT" | head -1)
trap 'kill $UAS 2>/dev/null || true' EXIT
SIPP_BEST=$(ramp sipp "127.0.0.1:$UAS_PORT" -sn uac)
kill "$UAS" 2>/dev/null || true

echo
echo "highest rate with 0 failed calls (${STEP_SECONDS} s per step, rates: $RATES)"
echo "  hotline (short calls with a prompt): $HOTLINE_BEST cps"
echo "  hotline, signalling only:            $SIGNALLING_BEST cps"
echo "  SIPp UAC vs SIPp UAS (built-in):     $SIPP_BEST cps"
[ -z "$CEILING" ] || echo "  the machine at $AT cps: $STREAMS streams of the $PROMPT_SECONDS s prompt; a bare sender alone: $CEILING"
if [ "$SIPP_BEST" -gt 0 ]; then
    echo "  ratio hotline / SIPp UAS:            $(echo "scale=2; $HOTLINE_BEST / $SIPP_BEST" | bc)"
    echo "  ratio signalling only / SIPp UAS:    $(echo "scale=2; $SIGNALLING_BEST / $SIPP_BEST" | bc)"
fi
