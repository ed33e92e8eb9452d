#!/usr/bin/env bash
# Held callers: how clean the hold music stays with N owners waiting at once.
#
#   benches/held.sh N [RATE] [HOLD_SECONDS]
#   BIN=/tmp/old/hotline benches/held.sh 1000     # another build
#   WORKERS=1 RTPRIO=0 benches/held.sh 2000       # [media] workers, realtime_priority
#
# Starts the hotline (release build) with the demo agents but nobody logged
# in and [acd] when_empty = "wait", so every caller who presses 0 waits in
# the general queue on the looped hold music. SIPp stands for the carrier's
# trunk and places N calls at RATE a second (tests/scenarios/caller_held.xml:
# each streams its own audio, presses 0, holds HOLD_SECONDS, hangs up). Once
# all are up, 10 s of the hotline's outbound RTP is captured (dumpcap) and
# each stream analysed (tshark's RTP statistics): its largest gap between
# packets and its RFC 3550 jitter, median and p99 over the streams, and the
# packets lost. Meanwhile the hotline's CPU is read from /proc, and its RSS.
#
# In the same run, benches/bare_sender.rs sends the same number of streams
# (one UDP socket each, 172-byte packets every 20 ms, one thread) for 10 s:
# the machine's cost of a packet with nothing else to do. The hotline's CPU
# per packet sent is quoted beside it, as a ratio.
#
# Prints a table and one JSON line. Bounded in calls and time; stops by
# itself and ends only the processes it started. Needs sipp (sip-tester),
# dumpcap, tshark and capinfos (tshark), sox.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:?usage: benches/held.sh N [RATE] [HOLD_SECONDS]}
RATE=${2:-200}
HOLD=${3:-$((N / RATE + 40))}
PORT=${PORT:-26060}
BIN=${BIN:-./target/release/hotline}
for tool in sipp dumpcap tshark capinfos sox; do
    command -v $tool >/dev/null || {
        echo "$tool not found: apt-get install -y sip-tester tshark sox" >&2
        exit 2
    }
done
[ "$BIN" != ./target/release/hotline ] || cargo build --release --quiet
BARE=$(benches/bare_sender_bin.sh)
OUT=$(mktemp -d /tmp/hotline-held.XXXXXX)

cat >"$OUT/hotline.toml" <<EOF
[sip]
listen = "127.0.0.1:$PORT"
answer_after_ms = 0
trunks = ["127.0.0.1"]
max_calls = $((N + 100))
max_unconfirmed = $((N + 100))
max_unconfirmed_per_source = $((N + 100))
[sip.trunk_limits]
invite_per_second = $((RATE * 2)).0
invite_burst = $((RATE * 4)).0
register_per_second = 100.0
register_burst = 200.0
other_per_second = $((N * 10 + 1000)).0
other_burst = $((N * 10 + 1000)).0
[media]
ip = "127.0.0.1"
rtp_port_min = 30000
rtp_port_max = 59999
${WORKERS:+workers = $WORKERS}
${RTPRIO:+realtime_priority = $RTPRIO}
[tickets]
store = "$OUT/events.db"
[owners]
db = "$OUT/owners.db"
[ivr]
recordings = "$OUT/rec"
[http]
listen = "127.0.0.1:0"
[acd]
agents = "config/agents.toml"
when_empty = "wait"
EOF
sox prompts/hold_en.wav -r 8000 -c 1 -e u-law "$OUT/caller.wav"

"$BIN" run --config "$OUT/hotline.toml" >"$OUT/hotline.out" 2>"$OUT/hotline.log" &
HOTLINE=$!
SIPP=
trap 'kill $HOTLINE ${SIPP:-} 2>/dev/null || true; wait 2>/dev/null || true' EXIT
sleep 1.5
kill -0 $HOTLINE 2>/dev/null || { echo "the hotline did not start: $OUT/hotline.log" >&2; exit 1; }

SCENARIO="$PWD/tests/scenarios/caller_held.xml"
(cd "$OUT" && exec sipp "127.0.0.1:$PORT" -sf "$SCENARIO" \
    -s 100 -i 127.0.0.1 -p $((PORT + 20)) -r "$RATE" -m "$N" -l "$N" -d $((HOLD * 1000)) \
    -mp 6000 -rtp_threadtasks 100 -buff_size 4194304 -timeout $((HOLD + N / RATE + 60))s \
    -nostdin -trace_stat -stf stat.csv -fd 1 >sipp.out 2>&1) &
SIPP=$!
# Every call up, pressed 0, and its hold music started.
sleep $(((N + RATE - 1) / RATE + 6))

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# The whole machine's busy time too (every core; /proc/stat's first line).
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
t0=$(ticks $HOTLINE)
p0=$(ticks $SIPP)
m0=$(busy)
s0=$(date +%s.%N)
# 11 s, of which the first is left out: dumpcap setting up its buffer
# disturbs the machine for a moment.
dumpcap -q -i lo -f "udp src portrange 30000-59999" -a duration:11 -B 512 -P -w "$OUT/capture.pcap" 2>/dev/null
t1=$(ticks $HOTLINE)
p1=$(ticks $SIPP)
m1=$(busy)
s1=$(date +%s.%N)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$HOTLINE/status")

# The callers hang up HOLD s after they came; SIPp gets that and a minute
# more, then is ended (on a machine past its capacity some of its calls
# never finish, and its own -timeout has been seen not to end it).
for _ in $(seq $(((HOLD + 60) * 2))); do
    kill -0 $SIPP 2>/dev/null || break
    sleep 0.5
done
if kill -0 $SIPP 2>/dev/null; then
    echo "SIPp had not finished $((HOLD + 60)) s after the capture: ended (its figures are the calls it finished)" >&2
    kill $SIPP
fi
wait $SIPP || true
SIPP=
# The bare sender once the callers are gone (nothing else of ours running).
bare='null'
if [ -n "$BARE" ]; then
    bare=$("$BARE" "$N" 10 2>/dev/null | awk '/us_per_packet/ {print $2}')
    bare=${bare:-null}
fi

tshark -r "$OUT/capture.pcap" -Y "frame.time_relative >= 1" -w "$OUT/rtp.pcap" 2>/dev/null
# The span the analysed packets cover: the rates are over it, not over
# dumpcap's whole run (which includes its start, a second or more on a
# loaded machine).
streamed=$(capinfos -u -T -r -M "$OUT/rtp.pcap" 2>/dev/null | awk -F'\t' '{ print $2 }')
tshark -r "$OUT/rtp.pcap" -q -d udp.port==30000-59999,rtp -z rtp,streams 2>/dev/null |
    awk '$0 ~ /^ +[0-9.]+ +[0-9.]+ +127/ {
        # Pkts, Lost, Max Delta, Max Jitter (the columns after the payload name)
        for (i = 1; i <= NF; i++) if ($i ~ /^g711|^G711/) p = i
        print $(p + 1), $(p + 2), $(p + 6), $(p + 9)
    }' >"$OUT/streams.txt"
ok=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i } END { print $h["SuccessfulCall(C)"], $h["FailedCall(C)"] }' "$OUT/stat.csv")
python3 - "$OUT/streams.txt" "$N" "$t0" "$t1" "$s0" "$s1" "$(getconf CLK_TCK)" "$rss_kb" "$bare" "$ok" "$OUT" "$p0" "$p1" "$m0" "$m1" "$streamed" <<'PY'
import json, os, sys
path, n, t0, t1, s0, s1, hz, rss, bare, ok, out, p0, p1, m0, m1, streamed = sys.argv[1:]
rows = [l.split() for l in open(path) if l.strip()]
pkts = [int(r[0]) for r in rows]
lost = sum(int(r[1]) for r in rows)
gaps = sorted(float(r[2]) for r in rows)
jit = sorted(float(r[3]) for r in rows)
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None
seconds = float(s1) - float(s0)
streamed = float(streamed or 0)  # no packets: no span
cpu_s = (int(t1) - int(t0)) / int(hz)
sent = sum(pkts)
# CPU a second (over dumpcap's run) over the packets a second (over the
# analysed span of the capture)
us_per_packet = (cpu_s / seconds) * 1e6 / (sent / streamed) if sent and streamed else None
bare = None if bare == 'null' else float(bare)
ok, failed = ok.split()
r = {
    "callers": int(n), "ok": int(ok), "failed": int(failed), "streams": len(rows),
    "packets_per_stream_s": q(sorted(p / streamed for p in pkts), 0.5) if streamed else None,
    "max_gap_ms": {"median": q(gaps, 0.5), "p99": q(gaps, 0.99), "max": gaps[-1] if gaps else None},
    "jitter_ms": {"median": q(jit, 0.5), "p99": q(jit, 0.99)},
    "lost": lost,
    "hotline_cpu_pct": round(cpu_s * 100 / seconds, 1),
    "sipp_cpu_pct": round((int(p1) - int(p0)) / int(hz) * 100 / seconds, 1),
    "machine_cpu_pct": round((int(m1) - int(m0)) / int(hz) * 100 / seconds, 1),
    "rss_kb_per_call": int(rss) // max(1, len(rows)),
    "hotline_us_per_packet": round(us_per_packet, 2) if us_per_packet else None,
    "bare_us_per_packet": bare,
    "ratio_to_bare": round(us_per_packet / bare, 2) if us_per_packet and bare else None,
    "out": out,
}
# A stream sends 50 packets a second: a capture holding much less missed
# packets itself (dumpcap behind on a saturated machine), and the gaps and
# jitter measured from it are not the hotline's.
kept = (r["packets_per_stream_s"] or 0) / 50
r["capture_kept"] = round(kept, 3)
if kept < 0.8:
    print(f"CAPTURE INCOMPLETE: it holds {kept:.0%} of the packets the streams send "
          f"(dumpcap could not keep up); the gap and jitter figures are not the hotline's",
          file=sys.stderr)
print(f"{n} held callers: {len(rows)} streams, max gap median {r['max_gap_ms']['median']} ms "
      f"p99 {r['max_gap_ms']['p99']} ms, jitter median {r['jitter_ms']['median']} ms "
      f"p99 {r['jitter_ms']['p99']} ms, lost {lost}; CPU: hotline {r['hotline_cpu_pct']} %, "
      f"SIPp {r['sipp_cpu_pct']} %, machine {r['machine_cpu_pct']} % of {os.cpu_count() * 100}; "
      f"{r['hotline_us_per_packet']} us/packet (bare sender {bare}, x{r['ratio_to_bare']})",
      file=sys.stderr)
print(json.dumps(r))
PY
