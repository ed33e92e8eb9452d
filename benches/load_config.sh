# Sourced by benches/load.sh, overload.sh and instructions.sh: the hotline's
# configuration for call-rate runs.
#
#   load_config FILE SIP_PORT DIR [HTTP]  # writes FILE; the store and owners in DIR
#   RTPRIO=0 MAX_BUSY=90 ...              # [media] realtime_priority, max_busy_percent
#   MAX_CALLS=4000 ...                    # [sip] max_calls (default 100000)
#
# SIPp stands for the carrier's trunk, and the caps on calls, unconfirmed
# calls and transactions are lifted: what limits the rate is the machine and
# the hotline's own measure of it (the switch's queue, the media workers'
# schedule), not a configured number.
load_config() {
cat >"$1" <<EOF
[sip]
listen = "127.0.0.1:$2"
answer_after_ms = 0
# SIPp is the carrier's trunk here, sized for the load (not a stranger
# whose INVITEs are limited to a few a second).
trunks = ["127.0.0.1"]
max_calls = ${MAX_CALLS:-100000}
max_unconfirmed = 100000
max_unconfirmed_per_source = 100000
max_transactions = 1000000
[sip.trunk_limits]
invite_per_second = 100000
invite_burst = 100000
register_per_second = 100
register_burst = 200
other_per_second = 400000
other_burst = 400000
[media]
ip = "127.0.0.1"
rtp_port_min = 30000
rtp_port_max = 59999
${RTPRIO:+realtime_priority = $RTPRIO}
${MAX_BUSY:+max_busy_percent = $MAX_BUSY}
[tickets]
store = "$3/events.db"
[owners]
db = "$3/owners.db"
# The line test (answer, digits until #, goodbye): the SIP and RTP load, not the menu.
[ivr]
menu = ""
[http]
listen = "127.0.0.1:${4:-0}"
EOF
}
