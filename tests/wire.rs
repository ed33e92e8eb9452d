//! The hotline against hand-written bytes on a raw socket: a corpus of
//! malformed and odd-but-legal messages, TCP framing, and BYE retransmissions
//! (SIPp cannot send a byte-identical retransmission: it answers our
//! identical 200 by resending its own last message, an endless echo).

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Hotline, field, sipp};

const BASE: u16 = 13000;

/// Reads SIP messages until `wait` passes. Returns them.
fn responses(sock: &UdpSocket, wait: Duration) -> Vec<String> {
    responses_until(sock, wait, |_| false)
}

/// Reads SIP messages until one satisfies `done` or `wait` passes.
fn responses_until(sock: &UdpSocket, wait: Duration, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 65536];
    while Instant::now() < end {
        sock.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if done(seen.last().unwrap()) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    seen
}

fn status(msg: &str) -> String {
    msg.lines().next().unwrap_or_default().to_string()
}

#[test]
fn malformed_corpus_gets_right_answers_and_the_hotline_keeps_serving() {
    // T1 = 20 ms: the corpus' unacknowledged INVITEs time out within 1.3 s.
    let mut h = Hotline::start(
        BASE,
        "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\ntrunks = [\"127.0.0.1\"]\nanswer_after_ms = 20\nt1_ms = 20\n",
    );
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "corpus has {} messages", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let expect = name.split('-').next().unwrap().to_string();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(h.target()).unwrap();
        sock.send(&std::fs::read(path).unwrap()).unwrap();
        // The first answer that is not 100 Trying (unless 100 is what we expect).
        let answer = |m: &str| expect == "100" || !m.starts_with("SIP/2.0 100 ");
        let wait = if expect == "none" { 300 } else { 2000 };
        let got: Vec<String> = responses_until(&sock, Duration::from_millis(wait), answer)
            .iter()
            .map(|m| status(m))
            .collect();
        let ok = match expect.as_str() {
            "none" => got.is_empty(),
            code => got
                .iter()
                .find(|s| answer(s))
                .is_some_and(|s| s.starts_with(&format!("SIP/2.0 {code} "))),
        };
        if !ok {
            failures.push(format!("{name}: expected {expect}, got {got:?}"));
        }
        assert!(h.is_running(), "hotline died on {name}\n{}", h.log());
    }
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), h.log());
    // Still serving: a full call with digits after the whole corpus.
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n9;1;#;\n").unwrap();
    let run = sipp(
        &h,
        "caller_info.xml",
        &["-m", "1", "-inf", inf.to_str().unwrap()],
    );
    assert_eq!(run.status, 0, "{}", run.stdout);
    let heard = h.lines("digits collected");
    assert_eq!(field(heard.last().unwrap(), "digits"), Some("91"));
    let log = h.stop();
    let stopped = log.lines().find(|l| l.contains("hotline stopped")).unwrap();
    assert_eq!(field(stopped, "ports_in_use"), Some("0"), "{stopped}");
}

fn options(call_id: &str) -> String {
    format!(
        "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{call_id}\r\nFrom: <sip:o@127.0.0.1>;tag=t\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn tcp_frames_joined_and_split_messages() {
    let h = Hotline::start(BASE, "");
    let mut tcp = TcpStream::connect(h.target()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // Two messages in one segment, then one split across three, with CRLF keep-alives.
    tcp.write_all(format!("{}{}\r\n\r\n", options("joined-1"), options("joined-2")).as_bytes())
        .unwrap();
    let split = options("split-3");
    for part in [&split[..10], &split[10..70], &split[70..]] {
        tcp.write_all(part.as_bytes()).unwrap();
        tcp.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    while got.matches("SIP/2.0 200 OK").count() < 3 {
        let n = tcp.read(&mut buf).expect("three answers");
        assert!(n > 0, "connection closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    for id in ["joined-1", "joined-2", "split-3"] {
        assert!(got.contains(&format!("Call-ID: {id}")), "{got}");
    }
}

#[test]
fn bye_retransmissions_get_the_same_answer_and_end_the_call_once() {
    let h = Hotline::start(BASE, "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(h.target()).unwrap();
    let me = sock.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5998 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv\r\nFrom: <sip:o@127.0.0.1>;tag=caller\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: byeretx\r\nCSeq: 1 INVITE\r\nContact: <sip:o@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sock.send(invite.as_bytes()).unwrap();
    let answered = responses(&sock, Duration::from_millis(800));
    let ok = answered
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200 OK"))
        .unwrap_or_else(|| panic!("{answered:?}"));
    let to = ok.lines().find(|l| l.starts_with("To:")).unwrap();
    let dialog = |method: &str, branch: &str, cseq: u32| {
        format!(
            "{method} sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\nFrom: <sip:o@127.0.0.1>;tag=caller\r\n{to}\r\nCall-ID: byeretx\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sock.send(dialog("ACK", "z9hG4bK-ack", 1).as_bytes())
        .unwrap();
    let bye = dialog("BYE", "z9hG4bK-bye", 2);
    let mut answers = Vec::new();
    for pause in [0, 100, 1500] {
        std::thread::sleep(Duration::from_millis(pause));
        sock.send(bye.as_bytes()).unwrap();
        answers.extend(
            responses(&sock, Duration::from_millis(300))
                .iter()
                .map(|m| status(m))
                .filter(|s| !s.is_empty()),
        );
    }
    // The 200 OK retransmissions of the INVITE stopped with the ACK, so
    // every answer here is to a BYE copy.
    assert_eq!(answers, vec!["SIP/2.0 200 OK"; 3], "{}", h.log());
    let ended = h.lines("call ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(field(&ended[0], "reason"), Some("CallerHungUp"));
}

#[test]
fn responses_carry_a_to_tag_the_real_source_in_the_via_and_the_cseq_as_sent() {
    let h = Hotline::start(
        BASE,
        "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\ntrunks = [\"127.0.0.1\"]\nserver = \"hotline-test\"\n",
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(h.target()).unwrap();
    let port = sock.local_addr().unwrap().port();
    // The Via names a host that is not where the datagram came from (a
    // phone behind NAT), asks for rport, and the CSeq is written oddly.
    let register = "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-stamp;rport\r\n\
         From: <sip:2001@127.0.0.1>;tag=ph\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: stamp@127.0.0.1\r\n\
         CSeq: 0007 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    sock.send(register.as_bytes()).unwrap();
    let got = responses_until(&sock, Duration::from_secs(2), |_| true);
    let reply = &got[0];
    // No agents here: 405, with a To tag as every response but 100.
    assert!(reply.starts_with("SIP/2.0 405"), "{reply}");
    let to = reply.lines().find(|l| l.starts_with("To:")).unwrap();
    assert!(to.contains(";tag="), "{reply}");
    let via = reply.lines().find(|l| l.starts_with("Via:")).unwrap();
    assert!(
        via.contains(&format!(";received=127.0.0.1;rport={port}")),
        "{via}"
    );
    assert!(reply.contains("\r\nCSeq: 0007 REGISTER\r\n"), "{reply}");
    assert!(reply.contains("\r\nServer: hotline-test\r\n"), "{reply}");
    // Without a configured Server, none is sent (nothing for a scanner).
    let quiet = Hotline::start(BASE, "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(quiet.target()).unwrap();
    sock.send(options("quiet").as_bytes()).unwrap();
    let got = responses_until(&sock, Duration::from_secs(2), |_| true);
    assert!(got[0].starts_with("SIP/2.0 200"), "{}", got[0]);
    assert!(!got[0].contains("Server:"), "{}", got[0]);
}

/// A burst of requests while the switch is busy for a moment waits in the
/// SIP socket's buffer: the hotline asks for 4 MB and gets it, or says at
/// start that the kernel gave less (net.core.rmem_max without root).
#[test]
fn the_sip_socket_keeps_a_large_receive_buffer_or_says_why_not() {
    let h = Hotline::start(BASE, "");
    let out = std::process::Command::new("ss")
        .args(["-u", "-l", "-n", "-m", &format!("sport = :{}", h.sip_port)])
        .output()
        .expect("ss (Debian package iproute2, installed by tests/run.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    // Linux shows twice the size set (its bookkeeping counted).
    let rb: usize = text
        .split(|c: char| c == ',' || c == '(' || c == ')' || c.is_whitespace())
        .find_map(|w| w.strip_prefix("rb")?.parse().ok())
        .unwrap_or_else(|| panic!("no rb in: {text}"));
    let warned = h.log().contains("raise net.core.rmem_max");
    assert!(
        rb >= 2 * (4 << 20) || warned,
        "receive buffer {rb} and no warning: {text}\n{}",
        h.log()
    );
    // Given less, it says so; given all, it says nothing.
    assert_eq!(warned, rb < 2 * (4 << 20), "{rb}: {}", h.log());
}
