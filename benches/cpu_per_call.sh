#!/usr/bin/env bash
# CPU per call, side by side in one run: SIPp's caller at RATE calls a
# second, CALLS calls, against
#   1. the hotline (release build; the line test, BYE right after the ACK:
#      tests/scenarios/caller_hangup.xml; every call's events durable in
#      SQLite, an RTP port bound per call);
#   2. SIPp's built-in UAS (-sn uas), the same machine's SIP ceiling;
#   3. Kamailio as a stateless responder (200 to INVITE and BYE, ACK
#      absorbed): what a lean SIP server costs a call.
# Each target's own CPU time (user + system, from /proc) over the calls it
# completed, and the hotline's ratio to each peer.
#
#   benches/cpu_per_call.sh [RATE] [CALLS]
#   ROUNDS=5 benches/cpu_per_call.sh        # five rounds, then the medians
#   BIN=/tmp/old/hotline LEGACY=1 PEERS=0 benches/cpu_per_call.sh   # one build alone
#   WARMUP=0 benches/cpu_per_call.sh        # measured from the first call
#
# LEGACY=1 leaves out the [sip] keys a binary from before the edge guard
# does not know (trunks, limits). Kamailio (Debian package kamailio) is
# installed here when missing, never by the tests. Every run is bounded in
# calls and time and stops by itself; only the processes started here are
# ended. The machine is shared: take several runs and quote medians.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-2000}
CALLS=${2:-20000}
BIN=${BIN:-./target/release/hotline}
PEERS=${PEERS:-1}
PORT=${PORT:-29060}
# Unmeasured calls first, to each target (see warm_up): 2 s of them.
WARMUP=${WARMUP:-$((RATE * 2))}
[ "$BIN" != ./target/release/hotline ] || cargo build --release --quiet
command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 2; }
if [ "$PEERS" = 1 ] && ! command -v kamailio >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq kamailio >/dev/null; else sudo apt-get install -y -qq kamailio >/dev/null; fi
fi
ROUNDS=${ROUNDS:-1}
if [ "$ROUNDS" -gt 1 ]; then
    # Whole rounds one after another (each with a fresh hotline and store),
    # then each figure's median, and the median of the ratios taken within
    # a round: the machine's speed drifts between rounds, a round's three
    # targets share it.
    ALL=$(mktemp /tmp/hotline-cpu-rounds.XXXXXX)
    for round in $(seq 1 "$ROUNDS"); do
        echo "round $round of $ROUNDS"
        ROUNDS=1 bash benches/cpu_per_call.sh "$RATE" "$CALLS" | tee -a "$ALL"
    done
    awk -v rounds="$ROUNDS" '
        function median(name,    n, i, j, t, v) {
            n = split(seen[name], v, " ")
            for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
        $2 ~ /^[0-9]+$/ && $3 == "ok" { seen[$1] = seen[$1] " " $6; if ($NF ~ /^x/) seen[$1 "/x"] = seen[$1 "/x"] " " substr($NF, 2); if (!($1 in order)) { order[$1] = ++k; names[k] = $1 } }
        END {
            printf "medians of %d rounds, CPU per completed call:\n", rounds
            for (i = 1; i <= k; i++) {
                printf "  %-20s %8.1f us", names[i], median(names[i])
                if ((names[i] "/x") in seen) printf "   hotline x%.2f", median(names[i] "/x")
                printf "\n"
            }
        }' "$ALL"
    rm -f "$ALL"
    exit 0
fi
OUT=$(mktemp -d /tmp/hotline-cpu.XXXXXX)
HZ=$(getconf CLK_TCK)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

ticks() { # the CPU ticks of the processes given, in all
    local sum=0 p
    for p in "$@"; do
        sum=$((sum + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
    done
    echo $sum
}

# warm_up -- SIPP_ARGS: WARMUP calls at RATE, not measured: each target
# is measured in its steady state (allocators and caches grown, the
# hotline's freed ports rested and their sockets kept), as a server that
# has been up a while runs. The same for the three.
warm_up() {
    shift
    [ "$WARMUP" -gt 0 ] || return 0
    (cd "$OUT" && sipp "$@" -i 127.0.0.1 -p $((PORT + 20)) -r "$RATE" -m "$WARMUP" -l $((RATE * 20)) \
        -buff_size 4194304 -timeout 60s -nostdin >warm_up.out 2>&1) || true
}

# measure NAME TARGET_PIDS -- SIPP_ARGS: one SIPp caller run; prints
# "NAME OK FAILED US_PER_CALL".
measure() {
    local name=$1 pids=$2
    shift 3
    local before after
    before=$(ticks $pids)
    (cd "$OUT" && sipp "$@" -i 127.0.0.1 -p $((PORT + 20)) -r "$RATE" -m "$CALLS" -l $((RATE * 20)) \
        -buff_size 4194304 -timeout 60s -nostdin -trace_stat -stf "$name.csv" -fd 1 >"$name.out" 2>&1) || true
    after=$(ticks $pids)
    awk -F';' -v name="$name" -v cpu=$((after - before)) -v hz="$HZ" '
        NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i }
        END {
            ok = $h["SuccessfulCall(C)"]; failed = $h["FailedCall(C)"]
            printf "%s %d %d %.1f\n", name, ok, failed, (ok > 0 ? cpu / hz * 1e6 / ok : 0)
        }' "$OUT/$name.csv"
}

{
    printf '[sip]\nlisten = "127.0.0.1:%s"\nanswer_after_ms = 0\n' "$PORT"
    if [ "${LEGACY:-0}" != 1 ]; then
        # SIPp stands for the carrier's trunk, with limits sized for the load
        # (calls this short never hold 4,000 at once; a max_calls the
        # open-files limit cannot hold would leave no descriptors for the
        # sockets of freed ports, kept bound for the next call).
        printf 'trunks = ["127.0.0.1"]\nmax_calls = 4000\nmax_unconfirmed = 100000\n'
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
HOTLINE=$!
PIDS+=("$HOTLINE")
sleep 1.5
kill -0 "$HOTLINE" 2>/dev/null || { echo "the hotline did not start: $OUT/hotline.log" >&2; exit 1; }
# threads PID: "name ticks" per thread, summed over threads of one name.
threads() {
    for t in /proc/"$1"/task/*; do
        awk '{ match($0, /\(.*\)/); name = substr($0, RSTART + 1, RLENGTH - 2); sub(/.*\) /, "");
               print name, $12 + $13 }' "$t/stat" 2>/dev/null
    done | awk '{ t[$1] += $2 } END { for (n in t) print n, t[n] }' | sort
}
caller=("127.0.0.1:$PORT" -sf "$PWD/tests/scenarios/caller_hangup.xml" -s 100)
warm_up -- "${caller[@]}"
threads "$HOTLINE" >"$OUT/threads.before"
results=$(measure hotline "$HOTLINE" -- "${caller[@]}")
threads "$HOTLINE" >"$OUT/threads.after"
kill "$HOTLINE"
wait "$HOTLINE" 2>/dev/null || true

if [ "$PEERS" = 1 ]; then
    (cd "$OUT" && exec sipp -sn uas -i 127.0.0.1 -p $((PORT + 10)) -buff_size 4194304 -nostdin >uas.out 2>&1) &
    UAS=$!
    PIDS+=("$UAS")
    sleep 0.5
    warm_up -- "127.0.0.1:$((PORT + 10))" -sn uac
    results+=$'\n'$(measure sipp_uas "$UAS" -- "127.0.0.1:$((PORT + 10))" -sn uac)
    kill "$UAS"

    cat >"$OUT/kamailio.cfg" <<EOF
#!KAMAILIO
debug=0
log_stderror=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:$((PORT + 30))
loadmodule "sl.so"
loadmodule "textops.so"
request_route {
    if (is_method("ACK")) { exit; }
    if (is_method("INVITE")) { append_to_reply("Contact: <sip:ivr@127.0.0.1:$((PORT + 30))>\r\n"); }
    sl_send_reply("200", "OK");
    exit;
}
EOF
    modules=$(dirname "$(find /usr/lib -name sl.so -path '*kamailio*' | head -1)")
    kamailio -f "$OUT/kamailio.cfg" -L "$modules" -P "$OUT/kamailio.pid" -Y "$OUT" -m 64 -M 16 -DD -E \
        >"$OUT/kamailio.log" 2>&1 &
    KAMAILIO=$!
    PIDS+=("$KAMAILIO")
    sleep 1
    # The main process and its children (the UDP receivers).
    kpids="$KAMAILIO $(pgrep -P "$KAMAILIO" | tr '\n' ' ')"
    warm_up -- "127.0.0.1:$((PORT + 30))" -sn uac
    results+=$'\n'$(measure kamailio_stateless "$kpids" -- "127.0.0.1:$((PORT + 30))" -sn uac)
    kill "$KAMAILIO"
fi

echo "$results" | awk -v rate="$RATE" -v calls="$CALLS" '
    { name[NR] = $1; ok[NR] = $2; failed[NR] = $3; us[NR] = $4 }
    END {
        printf "%d calls at %d/s, CPU per completed call:\n", calls, rate
        for (i = 1; i <= NR; i++) {
            printf "  %-20s %7d ok %6d failed %8.1f us", name[i], ok[i], failed[i], us[i]
            if (i > 1 && us[i] > 0) printf "   hotline x%.2f", us[1] / us[i]
            printf "\n"
        }
    }'
# Where the hotline's share went, thread by thread (the switch runs on a
# tokio worker with the media task and the store's readers).
ok=$(echo "$results" | awk '$1 == "hotline" { print $2 }')
join -a 2 -e 0 -o 2.1,1.2,2.2 "$OUT/threads.before" "$OUT/threads.after" |
    awk -v ok="$ok" -v hz="$HZ" '$3 > $2 && ok > 0 { printf "    %-18s %8.1f us\n", $1, ($3 - $2) / hz * 1e6 / ok }'
echo "(files: $OUT)"
