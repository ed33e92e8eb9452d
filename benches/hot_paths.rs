//! Hot paths per message and per packet: SIP parsing, RTP playout, RTP
//! receive, the mixer, and one log line.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hotline::media::g711::Law;
use hotline::media::prompt::Prompt;
use hotline::media::rtp::{MAX_PACKET, RtpReceiver, RtpStream, StreamParams};
use hotline::sip::message;

const INVITE: &str = "INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-inv\r\n\
From: \"Owner\" <sip:13800138000@127.0.0.1:5061>;tag=1T1\r\n\
To: <sip:100@127.0.0.1:5060>\r\n\
Call-ID: 1-1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:13800138000@127.0.0.1:5061;transport=UDP>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 163\r\n\r\n\
v=0\r\no=owner 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";

fn sip(c: &mut Criterion) {
    c.bench_function("parse INVITE datagram", |b| {
        b.iter(|| message::parse_datagram(black_box(INVITE.as_bytes())).unwrap())
    });
    let compact = INVITE
        .replace("Via:", "v:")
        .replace("From:", "f:")
        .replace("To:", "t:")
        .replace("Call-ID:", "i:")
        .replace("Content-Length:", "l:");
    c.bench_function("parse INVITE datagram, compact headers", |b| {
        b.iter(|| message::parse_datagram(black_box(compact.as_bytes())).unwrap())
    });
}

fn params() -> StreamParams {
    StreamParams {
        remote: "127.0.0.1:6000".parse().unwrap(),
        codec_pt: 0,
        law: Law::Mu,
        dtmf_pt: Some(101),
    }
}

fn rtp(c: &mut Criterion) {
    let prompt = Arc::new(Prompt::from_samples("p", &vec![1000; 8000 * 600]));
    let t0 = Instant::now();
    let mut stream = RtpStream::new(t0, params(), 1, 0, 0);
    let mut buf = [0u8; MAX_PACKET];
    let mut tick = 0u64;
    let mut sent = 0u64;
    c.bench_function("RTP playout: one 20 ms packet", |b| {
        b.iter(|| {
            tick += 1;
            let now = t0 + Duration::from_millis(tick * 20);
            if !stream.is_playing() {
                // Every 30,000 packets: the prompt ended, start it again.
                stream.play(now, prompt.clone());
            }
            stream.poll_packets(now, &mut buf, |p, to| {
                sent += 1;
                black_box((p, to));
            })
        })
    });
    assert!(sent >= tick - tick / 1000, "every iteration sent a packet");
    let mut receiver = RtpReceiver::new(&params());
    let from = "127.0.0.1:6000".parse().unwrap();
    let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
    packet.extend([0xffu8; 160]);
    c.bench_function("RTP receive: one audio packet", |b| {
        b.iter(|| receiver.handle_datagram(from, black_box(&packet)))
    });
}

/// The mixer's cost per 20 ms frame for `n` participants (each pushes a
/// packet, each gets their mix): divide by `n` for the cost per participant.
fn mixer(c: &mut Criterion) {
    use hotline::ids::CallId;
    use hotline::media::mixer::{Audience, Mixer, Role};
    for n in [3u64, 5] {
        let mut m = Mixer::new();
        for i in 0..n {
            let role = if i == 0 { Role::Caller } else { Role::Agent };
            m.join(CallId(i), Law::Mu, role, Audience::All);
        }
        let payload: Vec<u8> = (0..160)
            .map(|i| Law::Mu.encode((i * 97 % 4000) as i16))
            .collect();
        let mut sent = 0u64;
        c.bench_function(&format!("mixer: one 20 ms frame, {n} participants"), |b| {
            b.iter(|| {
                for i in 0..n {
                    m.push(CallId(i), black_box(&payload));
                }
                m.mix(|call, p| {
                    sent += 1;
                    black_box((call, p));
                })
            })
        });
        // Nothing sent: this bench was filtered out, not run.
        assert!(sent == 0 || m.overflows == 0);
    }
}

/// One of a call's log lines as the hotline lays it out for a file or a
/// pipe (the writer here throws it away: what is measured is the line).
fn log_line(c: &mut Criterion) {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .with_ansi(false)
        .fmt_fields(hotline::logging::PlainFields)
        .event_format(hotline::logging::Plain)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let call = hotline::ids::CallId(4711);
        c.bench_function("log: one call's 'media closed' line", |b| {
            b.iter(|| {
                tracing::info!(
                    call = %black_box(call),
                    port = black_box(30_124u16),
                    rtp_sent = black_box(140u64),
                    rtp_received = black_box(139u64),
                    rtp_lost = 0u64,
                    rtp_relayed = 0u64,
                    rtp_held_back = 0u64,
                    rtp_foreign = 0u64,
                    "media closed"
                )
            })
        });
    });
}

criterion_group!(benches, sip, rtp, mixer, log_line);
criterion_main!(benches);
