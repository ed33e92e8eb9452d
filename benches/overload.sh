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
# p99, max and how many took over 10 ms) as SIPp saw it (-trace_rtt: on
# SIPp's millisecond clock, read once a loop; it includes SIPp's own delays,
# and SIPp shares the machine) and, when dumpcap
# is there, on the wire (the SIP port captured: from the INVITE reaching
# the hotline's socket to its 503 leaving, the hotline's own share; and how
# many of the late ones spanned a pause of 5 ms or more in what SIPp sent:
# SIPp stalled too, the machine was full. That is not only the VM: the
# hotline's real-time media workers take both cores from SIPp and from the
# switch's ordinary thread in bursts. With RTPRIO=0 the late ones fell from
# 106 and 433 to 0 and 38 in alternating runs, but 2,000 held callers'
# audio broke up (benches/held.sh: max gap p99 338 ms against 26): the
# audio of the calls taken comes first), and the hotline's own count of shed calls by reason (/metrics). Bounded in
# calls and time; stops by itself; ends only the processes it started.
# Needs sipp (Debian: sip-tester); dumpcap (tshark) for the wire figures.
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

CAPTURE=
if command -v dumpcap >/dev/null; then
    # Headers only (the Call-ID is within the first 600 bytes), classic pcap.
    dumpcap -q -i lo -f "udp port $PORT" -s 600 -B 64 -P -w "$OUT/sip.pcap" >/dev/null 2>&1 &
    CAPTURE=$!
    trap 'kill $HOTLINE $CAPTURE 2>/dev/null || true' EXIT
    sleep 1
fi

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
if [ -n "$CAPTURE" ]; then
    kill $CAPTURE
    wait $CAPTURE || true
fi

screen() { awk -F'|' -v row="$1" '$0 ~ row {gsub(/ /,"",$3); print $3}' "$OUT"/*_screen.log | tail -1; }
OK=$(screen "Successful call")
FAILED=$(screen "Failed call")
# One line per refused call: its time from the INVITE to the 503, in ms.
RTT=$(ls "$OUT"/*_rtt.csv 2>/dev/null | head -1 || true)
python3 - "$RTT" "${OK:-0}" "${FAILED:-0}" "$CALLS" "$OUT/metrics.txt" "$OUT/sip.pcap" "$PORT" <<'EOF'
import sys, json, re, struct, bisect
rtt, ok, failed, calls, metrics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pcap, port = sys.argv[6], int(sys.argv[7])

def wire_times(path):
    """INVITE in to 503 out per Call-ID, in ms, from a classic pcap of lo;
    and how many of those over 10 ms spanned a pause of 5 ms or more in
    what SIPp sent (SIPp, on the same machine, stalled too)."""
    try:
        data = open(path, 'rb').read()
    except FileNotFoundError:
        return None
    if len(data) < 24:
        return None
    magic = struct.unpack('<I', data[:4])[0]
    endian, scale = {0xa1b2c3d4: ('<', 1e-6), 0xa1b23c4d: ('<', 1e-9),
                     0xd4c3b2a1: ('>', 1e-6), 0x4d3cb2a1: ('>', 1e-9)}.get(magic, (None, None))
    if endian is None:
        return None
    link = struct.unpack(endian + 'I', data[20:24])[0]
    skip = {1: 14, 0: 4, 113: 16}.get(link)  # Ethernet (lo), BSD loopback, Linux cooked
    if skip is None:
        return None
    invites, times, at = {}, [], 24
    arrived, late = [], []
    call_id = re.compile(rb'\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)', re.I)
    while at + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + 'IIII', data[at:at + 16])
        pkt = data[at + 16:at + 16 + incl]
        at += 16 + incl
        ip = pkt[skip:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack('>HH', udp[:4])
        sip = udp[8:]
        t = sec + frac * scale
        if dport == port:
            arrived.append(t)
        m = call_id.search(sip)
        if not m:
            continue
        if dport == port and sip.startswith(b'INVITE '):
            invites.setdefault(m.group(1), t)
        elif sport == port and sip.startswith(b'SIP/2.0 503'):
            sent = invites.pop(m.group(1), None)
            if sent is not None:
                times.append((t - sent) * 1000)
                if t - sent > 0.010:
                    late.append((sent, t))
    paused = 0
    for sent, t in late:
        seen = arrived[bisect.bisect_left(arrived, sent):bisect.bisect_right(arrived, t)] + [t]
        if max(b - a for a, b in zip(seen, seen[1:])) >= 0.005:
            paused += 1
    return sorted(times), paused
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
wire, paused = wire_times(pcap) or (None, 0)
print(f"offered {calls}: taken and completed {ok - refused}, refused with 503 {refused}, failed {failed}")
print(f"time to 503 at SIPp: median {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {times[-1] if times else 0:.1f} ms, over 10 ms: {over}")
result = {"offered": calls, "completed": ok - refused, "refused": refused, "failed": failed,
          "refused_ms_median": q(0.5), "refused_ms_p99": q(0.99), "refused_over_10ms": over}
if wire:
    w = lambda p: wire[min(len(wire) - 1, int(p * len(wire)))]
    wire_over = sum(1 for t in wire if t > 10.0)
    print(f"time to 503 on the wire ({len(wire)} refusals captured): median {w(0.5):.2f} ms, "
          f"p99 {w(0.99):.2f} ms, max {wire[-1]:.2f} ms, over 10 ms: {wire_over} "
          f"({paused} of them while SIPp itself sent nothing for 5 ms or more)")
    result.update({"wire_refusals": len(wire), "wire_ms_median": round(w(0.5), 3),
                   "wire_ms_p99": round(w(0.99), 3), "wire_ms_max": round(wire[-1], 3),
                   "wire_over_10ms": wire_over, "wire_over_10ms_sipp_paused": paused})
print(f"shed by the hotline: {shed}")
result["shed"] = shed
print(json.dumps(result))
EOF
