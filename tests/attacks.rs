//! The hotline attacked the way the internet attacks a SIP port, with the
//! tools attackers use (SIPVicious `svcrack` and `svwar`, a SIPp flood) and
//! with hand-made requests where an attack is a single crafted message
//! (a replayed REGISTER, a downgraded digest). Everything on loopback:
//! 127.0.0.1 is where the attack tools send from (svcrack and svwar cannot
//! bind another address), 127.0.0.2 and up are other parties.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Hotline, assert_sipp_ok, http, manifest, sipp};
use hotline::sip::digest;

const BASE: u16 = 26000;

/// A hotline with the demo agents and API users; `sip` and `acd` are more
/// keys of those sections, `extra` more sections.
fn start(sip: &str, acd: &str, extra: &str) -> Hotline {
    start_full(sip, acd, "", extra)
}

/// The same with more keys of `[http]` too.
fn start_full(sip: &str, acd: &str, http: &str, extra: &str) -> Hotline {
    Hotline::start(
        BASE,
        &format!(
            "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\nanswer_after_ms = 50\n{sip}\n\
             [acd]\nagents = \"{}\"\n{acd}\n[http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n{http}\n{extra}",
            manifest("config/agents.toml"),
            manifest("config/users.toml"),
        ),
    )
}

/// A SIP endpoint on its own address, sending hand-written requests.
struct Phone {
    sock: UdpSocket,
    target: String,
}

impl Phone {
    fn on(ip: &str, h: &Hotline) -> Self {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Phone {
            sock,
            target: h.target(),
        }
    }

    fn local(&self) -> String {
        self.sock.local_addr().unwrap().to_string()
    }

    /// Sends `text`; the final response (1xx skipped), or None within 3 s.
    fn ask(&self, text: &str) -> Option<String> {
        self.sock.send_to(text.as_bytes(), &self.target).unwrap();
        let end = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 8192];
        while Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let reply = String::from_utf8_lossy(&buf[..n]).to_string();
                if !reply.starts_with("SIP/2.0 1") {
                    return Some(reply);
                }
            }
        }
        None
    }

    fn register(&self, user: &str, cseq: u32, contact: &str, auth: Option<&str>) -> String {
        let local = self.local();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{cseq}-{user}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{target}>;tag=ph{user}\r\nTo: <sip:{user}@{target}>\r\n\
             Call-ID: reg-{user}-{local}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{contact}>;expires=600\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            target = self.target
        )
    }

    /// REGISTER with the demo password, answering the challenge: the
    /// final response and the Authorization that was sent.
    fn register_with_password(&self, user: &str, password: &str, cseq: u32) -> (String, String) {
        let local = self.local();
        let challenge = self
            .ask(&self.register(user, cseq, &local, None))
            .expect("a challenge");
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        let auth = answer(
            &challenge,
            user,
            password,
            "REGISTER",
            &format!("sip:{}", self.target),
        );
        let reply = self
            .ask(&self.register(user, cseq + 1, &local, Some(&auth)))
            .expect("an answer");
        (reply, auth)
    }
}

/// The Authorization a phone sends for the first challenge in `reply`.
fn answer(reply: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    let value = reply
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .expect("WWW-Authenticate");
    let ch = digest::parse_challenge(value).unwrap();
    digest::authorization(&ch, user, password, method, uri, "a1b2c3d4")
}

fn metric(h: &Hotline, name: &str) -> f64 {
    common::http_get(h.http_port(), "/metrics")
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// CPU time the process used so far, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Limits high enough that svcrack is never told to slow down: what the
/// password test shows is the ban, not the rate limit.
const NO_RATE_LIMIT: &str = "[sip.limits]\ninvite_per_second = 10000.0\ninvite_burst = 10000.0\n\
    register_per_second = 10000.0\nregister_burst = 10000.0\nother_per_second = 10000.0\nother_burst = 10000.0\n";

/// svcrack against agent 2001 at `port` with a 200-word list ending in
/// the right password; its output.
fn svcrack(port: u16, dir: &std::path::Path) -> String {
    let words = dir.join("words.txt");
    let mut list: Vec<String> = (1..200).map(|i| format!("guess{i:03}")).collect();
    list.push("agent2001".into());
    std::fs::write(&words, list.join("\n") + "\n").unwrap();
    let out = Command::new("svcrack")
        .args(["-u", "2001", "-d"])
        .arg(&words)
        .args(["--maximumtime", "3"])
        .arg(format!("udp://127.0.0.1:{port}"))
        .output()
        .expect("svcrack is installed by tests/run.sh (Debian package sipvicious)");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn found_password(svcrack_output: &str) -> bool {
    svcrack_output
        .lines()
        .any(|l| l.contains("2001") && l.contains("agent2001"))
}

#[test]
fn password_guessing_is_banned_before_the_password_is_found() {
    // Without bans svcrack finds the password: the attack is real.
    let open = start("ban_failures = 0", "", NO_RATE_LIMIT);
    let cracked = svcrack(open.sip_port, open.dir.path());
    assert!(found_password(&cracked), "svcrack without bans: {cracked}");
    drop(open);

    let mut h = start("", "", NO_RATE_LIMIT);
    // A SIP/TCP connection the attacker holds open from the same address.
    let held = std::net::TcpStream::connect(("127.0.0.1", h.sip_port)).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let attack = {
        let (port, dir) = (h.sip_port, h.dir.path().to_path_buf());
        std::thread::spawn(move || svcrack(port, &dir))
    };
    // Meanwhile the agent's own phone registers from its own address.
    let phone = Phone::on("127.0.0.2", &h);
    let bans = h.wait_for("SECURITY ban", 1, Duration::from_secs(20));
    let (reply, _) = phone.register_with_password("2001", "agent2001", 1);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    let cracked = attack.join().unwrap();
    assert!(!found_password(&cracked), "svcrack: {cracked}");
    assert_eq!(bans.len(), 1, "{}", h.log());
    // The ban closed it.
    {
        use std::io::Read;
        let mut b = [0u8; 1];
        let read = (&held).read(&mut b);
        let closed = match &read {
            Ok(0) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        };
        assert!(
            closed,
            "the banned source's TCP connection is still open: {read:?}"
        );
    }
    assert!(
        bans[0].ends_with("SECURITY ban source=127.0.0.1 failures=10 seconds=900"),
        "{}",
        bans[0]
    );
    // fail2ban's filter in deploy/ finds exactly the ban line, and its host.
    let log = h.dir.path().join("hotline-copy.log");
    std::fs::write(&log, h.log()).unwrap();
    let f2b = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(&log)
        .arg(manifest("deploy/fail2ban/filter.d/hotline.conf"))
        .output()
        .expect("fail2ban-regex (Debian package fail2ban, installed by tests/run.sh)");
    let f2b = String::from_utf8_lossy(&f2b.stdout);
    assert!(f2b.contains(", 1 matched,"), "{f2b}");
    assert!(
        f2b.lines()
            .any(|l| l.contains("SECURITY ban source=127.0.0.1 failures=10")),
        "{f2b}"
    );
    // Failed attempts were logged at most once a second.
    let failures = h.lines("SECURITY auth_failed");
    assert!(!failures.is_empty() && failures.len() <= 5, "{failures:#?}");
    assert_eq!(metric(&h, "hotline_sip_banned_sources"), 1.0);
    assert!(metric(&h, "hotline_auth_failures_total") >= 10.0);
    // A supervisor sees the ban and lifts it; an agent may not.
    let port = h.http_port();
    let (status, body) = http(port, "GET", "/api/bans", Some("demo-supervisor"), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"source\":\"127.0.0.1\""), "{body}");
    let (status, _) = http(port, "GET", "/api/bans", Some("demo-2001"), None);
    assert_eq!(status, 403);
    let (status, body) = http(
        port,
        "DELETE",
        "/api/bans/127.0.0.1",
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(
        port,
        "DELETE",
        "/api/bans/127.0.0.1",
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 404);
    // The lifted source is heard again.
    let again = Phone::on("127.0.0.1", &h);
    let (reply, _) = again.register_with_password("2002", "agent2002", 1);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    h.stop();
}

#[test]
fn agents_cannot_be_told_apart_from_other_numbers() {
    // Generous limits: what is tested is what the answers say, not the rate.
    let h = start("", "", NO_RATE_LIMIT);
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        let out = Command::new("svwar")
            .args(["-e1000-2100", "-m", method, "--force"])
            .arg(format!("udp://127.0.0.1:{}", h.sip_port))
            .output()
            .expect("svwar is installed by tests/run.sh (Debian package sipvicious)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        // Table rows: | extension | status |
        let found: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells.len() >= 3 && cells[1].bytes().all(|b| b.is_ascii_digit()))
                    .then(|| cells[1])
                    .filter(|c| !c.is_empty())
            })
            .collect();
        // Nothing, or every number alike: 2001-2004 do not stand out.
        assert!(
            found.is_empty() || found.len() == 1101,
            "svwar {method} told agents apart: {found:?}\n{text}"
        );
    }
    // A REGISTER with a made-up nonce gets the same answer for an agent and
    // for a number that is none.
    let phone = Phone::on("127.0.0.1", &h);
    let answers: Vec<String> = ["2001", "1999", "2004", "3000"]
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let made_up = format!(
                "Digest username=\"{user}\", realm=\"hotline\", nonce=\"17a2b3.0123456789abcdef0123456789abcdef\", \
                 uri=\"sip:{}\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, \
                 nc=00000001, cnonce=\"x\"",
                h.target()
            );
            let reply = phone
                .ask(&phone.register(user, 10 + i as u32, &phone.local(), Some(&made_up)))
                .expect("an answer");
            let status = reply.lines().next().unwrap().to_string();
            let stale = reply.contains("stale=true");
            format!("{status} stale={stale}")
        })
        .collect();
    assert!(
        answers.iter().all(|a| *a == answers[0]) && answers[0].starts_with("SIP/2.0 401"),
        "{answers:?}"
    );
    // So does a feature code (*1) from an agent and from a number that is none.
    let answers: Vec<String> = ["2001", "1999"]
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let t = h.target();
            let made_up = format!(
                "Digest username=\"{user}\", realm=\"hotline\", nonce=\"17a2b3-1.0123456789abcdef0123456789abcdef\", \
                 uri=\"sip:*1@{t}\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, \
                 nc=00000001, cnonce=\"x\""
            );
            let local = phone.local();
            let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
            let invite = format!(
                "INVITE sip:*1@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-enum{i}\r\nMax-Forwards: 70\r\n\
                 From: <sip:{user}@{t}>;tag=e{i}\r\nTo: <sip:*1@{t}>\r\nCall-ID: enum-{i}\r\nCSeq: 1 INVITE\r\n\
                 Contact: <sip:{user}@{local}>\r\nAuthorization: {made_up}\r\nContent-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            );
            let reply = phone.ask(&invite).expect("an answer");
            let status = reply.lines().next().unwrap().to_string();
            format!("{status} stale={}", reply.contains("stale=true"))
        })
        .collect();
    assert!(
        answers[0] == answers[1] && answers[0].starts_with("SIP/2.0 401"),
        "{answers:?}"
    );
}

#[test]
fn a_captured_register_cannot_be_replayed() {
    let h = start("", "", "");
    let phone = Phone::on("127.0.0.1", &h);
    let (reply, auth) = phone.register_with_password("2001", "agent2001", 1);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    // The eavesdropper sends the same Authorization a little later, from
    // another address, moving the binding to a Contact of theirs.
    std::thread::sleep(Duration::from_secs(2));
    let thief = Phone::on("127.0.0.2", &h);
    let stolen = thief.register("2001", 3, "127.0.0.2:6666", Some(&auth));
    let reply = thief.ask(&stolen).expect("an answer");
    assert!(reply.starts_with("SIP/2.0 401"), "{reply}");
    // From the phone's own address the same answer is a used nc.
    let reply = phone
        .ask(&phone.register("2001", 4, "127.0.0.1:6666", Some(&auth)))
        .expect("an answer");
    assert!(
        reply.starts_with("SIP/2.0 401") && reply.contains("stale=true"),
        "{reply}"
    );
    let registered = h.lines("agent registered");
    assert_eq!(registered.len(), 1, "{registered:#?}");
    assert!(!h.log().contains("6666"), "the binding moved: {}", h.log());
    // One Authorization for *1 is not good for *3.
    let invite = |code: &str, cseq: u32, auth: Option<&str>| {
        let local = phone.local();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
        format!(
            "INVITE sip:{code}@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-f{cseq}\r\nMax-Forwards: 70\r\n\
             From: <sip:2001@{t}>;tag=f{cseq}\r\nTo: <sip:{code}@{t}>\r\nCall-ID: feature-{cseq}\r\nCSeq: {cseq} INVITE\r\n\
             Contact: <sip:2001@{local}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            t = h.target()
        )
    };
    let challenge = phone.ask(&invite("*1", 1, None)).unwrap();
    let auth = answer(
        &challenge,
        "2001",
        "agent2001",
        "INVITE",
        &format!("sip:*1@{}", h.target()),
    );
    let reply = phone.ask(&invite("*3", 2, Some(&auth))).unwrap();
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
    assert!(h.lines("agent feature code").is_empty(), "{}", h.log());
}

#[test]
fn md5_is_refused_when_only_sha256_is_offered() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.toml");
    let text = std::fs::read_to_string(manifest("config/agents.toml"))
        .unwrap()
        .replace("digest = [\"MD5\"]", "digest = [\"SHA-256\"]");
    std::fs::write(&agents, text).unwrap();
    let h = Hotline::start(
        BASE,
        &format!(
            "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\n[acd]\nagents = \"{}\"\n",
            agents.display()
        ),
    );
    let phone = Phone::on("127.0.0.1", &h);
    let local = phone.local();
    let challenge = phone.ask(&phone.register("2001", 1, &local, None)).unwrap();
    assert!(
        challenge.contains("algorithm=SHA-256") && !challenge.contains("algorithm=MD5"),
        "{challenge}"
    );
    // The phone answers the SHA-256 challenge with an MD5 digest.
    let sha = answer(
        &challenge,
        "2001",
        "agent2001",
        "REGISTER",
        &format!("sip:{}", h.target()),
    );
    let md5 = {
        let value = challenge
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .unwrap()
            .replace("SHA-256", "MD5");
        let ch = digest::parse_challenge(&value).unwrap();
        digest::authorization(
            &ch,
            "2001",
            "agent2001",
            "REGISTER",
            &format!("sip:{}", h.target()),
            "a1b2",
        )
    };
    let reply = phone
        .ask(&phone.register("2001", 2, &local, Some(&md5)))
        .unwrap();
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
    // SHA-256 with the same password is welcome.
    let reply = phone
        .ask(&phone.register("2001", 3, &local, Some(&sha)))
        .unwrap();
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
}

#[test]
fn phones_outside_the_agents_networks_are_refused_without_a_challenge() {
    let h = start("", "agent_networks = [\"127.0.0.1/32\"]", "");
    let outsider = Phone::on("127.0.0.2", &h);
    let reply = outsider
        .ask(&outsider.register("2001", 1, &outsider.local(), None))
        .unwrap();
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
    assert!(!reply.contains("WWW-Authenticate"), "{reply}");
    let inside = Phone::on("127.0.0.1", &h);
    let (reply, _) = inside.register_with_password("2001", "agent2001", 1);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
}

#[test]
fn a_flood_of_unacknowledged_invites_does_not_stop_real_callers() {
    // 127.0.0.1 is the carrier's trunk; the flood comes from 127.0.0.3.
    let mut h = start("trunks = [\"127.0.0.1\"]\nt1_ms = 100", "", "");
    let pid = h.pid();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kb(pid);
    let cpu_before = cpu_ticks(pid);
    let responses_before = metric(&h, "hotline_sip_responses_total");
    let rtp_before = metric(&h, "hotline_rtp_packets_sent_total");
    let flood_calls = 45_000;
    let flood = {
        let target = h.target();
        let port = (h.sip_port + 150).to_string();
        let cp = (h.sip_port + 151).to_string();
        let mp = (h.sip_port + 160).to_string();
        let dir = h.dir.path().to_path_buf();
        std::thread::spawn(move || {
            Command::new("sipp")
                .arg(&target)
                .arg("-sf")
                .arg(common::scenario("flood_no_ack.xml"))
                .args(["-i", "127.0.0.3", "-p", &port, "-cp", &cp, "-mp", &mp])
                .args(["-r", "3000", "-l", "5000", "-m", &flood_calls.to_string()])
                .args(["-nostdin", "-timeout", "40s", "-buff_size", "4194304"])
                .current_dir(dir)
                .output()
                .expect("sipp")
        })
    };
    // During the flood the owners' calls all go through, with audio.
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n4;2;#;\n").unwrap();
    let mut peak = rss_before;
    let callers = sipp(
        &h,
        "caller_info.xml",
        &["-m", "20", "-r", "2", "-inf", inf.to_str().unwrap()],
    );
    peak = peak.max(rss_kb(pid));
    assert_sipp_ok(&h, &callers);
    while !flood.is_finished() {
        peak = peak.max(rss_kb(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let flooded = flood.join().unwrap();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    assert!(
        String::from_utf8_lossy(&flooded.stdout).contains("Successful call"),
        "the flood ran: {}",
        String::from_utf8_lossy(&flooded.stderr)
    );
    assert_eq!(h.lines("digits collected").len(), 20, "{}", h.log());
    let rtp = metric(&h, "hotline_rtp_packets_sent_total") - rtp_before;
    assert!(rtp >= 20.0 * 50.0, "the callers heard {rtp} packets");
    // Timer H (64 x 100 ms) ends what the flood left half-open.
    std::thread::sleep(Duration::from_secs(8));
    let responses = metric(&h, "hotline_sip_responses_total") - responses_before;
    let per_invite = responses / flood_calls as f64;
    assert!(
        per_invite <= 2.0,
        "{responses} responses for {flood_calls} INVITEs"
    );
    assert!(metric(&h, "hotline_sip_rate_limited_total") > 40_000.0);
    let rss_after = rss_kb(pid);
    eprintln!(
        "flood: {responses} responses ({per_invite:.4} per INVITE); RSS {rss_before} kB before, peak {peak} kB, {rss_after} kB after; hotline CPU {cpu:.1} s for the flood and the 20 calls"
    );
    assert!(
        rss_after as f64 <= rss_before as f64 * 1.2,
        "RSS {rss_before} kB before, {rss_after} kB after"
    );
    assert!(peak < rss_before + 100_000, "RSS peaked at {peak} kB");
    h.stop();
}

#[test]
fn idle_tcp_connections_are_capped_and_a_tcp_call_still_gets_through() {
    let mut h = start("tcp_idle_seconds = 3", "", "");
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kb(h.pid());
    let addr = format!("127.0.0.1:{}", h.sip_port);
    let streams: Vec<std::net::TcpStream> = (0..3000)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(streams.len() > 2900, "{} connected", streams.len());
    // The hotline kept at most 20 from this address and closed the rest.
    std::thread::sleep(Duration::from_millis(500));
    let open = streams
        .iter()
        .filter(|s| {
            use std::io::Read;
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            matches!((&**s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert!(open <= 20, "{open} connections kept open");
    // Refused at accept, and counted. Not every one of the others: on a
    // loaded machine some tens are taken into slots that free up during
    // the burst and closed later (2,880-2,920 counted of 2,980 closed in
    // runs of 2026-12-02), so most of them, not all.
    let refused = metric(&h, "hotline_connections_refused_total");
    let beyond = (streams.len() - 20) as f64;
    assert!(
        refused >= 0.95 * beyond,
        "{refused} of {beyond} counted refused"
    );
    // Another party's call over TCP.
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n4;2;#;\n").unwrap();
    let run = sipp(
        &h,
        "caller_info.xml",
        &[
            "-t",
            "t1",
            "-i",
            "127.0.0.2",
            "-m",
            "1",
            "-inf",
            inf.to_str().unwrap(),
        ],
    );
    assert_sipp_ok(&h, &run);
    // The idle ones are closed after tcp_idle_seconds.
    std::thread::sleep(Duration::from_secs(4));
    let still = streams
        .iter()
        .filter(|s| {
            use std::io::Read;
            let mut b = [0u8; 1];
            matches!((&**s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(still, 0, "idle connections left open");
    let rss_after = rss_kb(h.pid());
    assert!(
        rss_after as f64 <= rss_before as f64 * 1.2,
        "RSS {rss_before} kB before, {rss_after} kB after"
    );
    h.stop();
}

/// A hotline running the default menu with the sample owners; 127.0.0.1
/// is the carrier's trunk.
fn menu_hotline() -> (Hotline, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("owners.db");
    let db = db.to_str().unwrap();
    for (what, file) in [
        ("import", "config/owners.csv"),
        ("import-gifts", "config/gifts.csv"),
    ] {
        common::cli(&["owners", "--db", db, what, &manifest(file)]);
    }
    let h = Hotline::start(
        BASE,
        &format!(
            "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\nanswer_after_ms = 50\ntrunks = [\"127.0.0.1\"]\n\
             [owners]\ndb = \"{db}\"\n[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\n",
            manifest("config/ivr.toml"),
            data.path().join("recordings").display()
        ),
    );
    (h, data)
}

/// A caller claiming O-0001's number in P-Asserted-Identity (and, for the
/// stranger, in From too), pressing `keys` with pauses; from `ip`.
fn claimed_call(h: &Hotline, name: &str, from: &str, ip: &str, keys: &[common::caller::Step]) {
    let xml = common::caller::scenario(h.dir.path(), name, from, "100", keys);
    let text = std::fs::read_to_string(&xml).unwrap().replacen(
        "Max-Forwards: 70",
        "Max-Forwards: 70\n      P-Asserted-Identity: <sip:13800138000@carrier.example>",
        1,
    );
    std::fs::write(&xml, text).unwrap();
    let run = sipp(h, xml.to_str().unwrap(), &["-m", "1", "-i", ip]);
    assert_sipp_ok(h, &run);
}

#[test]
fn a_spoofed_caller_id_is_believed_only_from_the_trunk() {
    use common::caller::Step;
    let (mut h, data) = menu_hotline();
    let keys = [
        Step::Pause(500),
        Step::Key('1'),
        Step::Pause(300),
        Step::Key('1'),
        Step::Pause(800),
        Step::Key('0'),
        Step::Key('4'),
        Step::Pause(3500),
        Step::Key('3'),
        Step::Pause(300),
        Step::Key('1'),
        Step::Pause(800),
    ];
    // A stranger on 127.0.0.2 claims O-0001's number, in From and in PAI.
    claimed_call(&h, "spoofed", "13800138000", "127.0.0.2", &keys);
    let starts = h.lines("ivr step");
    assert!(
        starts.iter().all(|l| !l.contains("owner O-0001")),
        "the stranger was taken for O-0001: {starts:#?}"
    );
    assert!(
        !h.log().contains("balance_is"),
        "the balance was read to a stranger: {}",
        h.log()
    );
    let db = data.path().join("owners.db");
    let shown = common::cli(&["owners", "--db", db.to_str().unwrap(), "show", "O-0001"]);
    assert!(shown.contains("\"points\": 800"), "{shown}");
    // The carrier's trunk asserting the same number is believed.
    claimed_call(&h, "asserted", "anonymous", "127.0.0.1", &keys[..5]);
    let log = h.stop();
    assert!(
        log.contains("owner O-0001") && log.contains("balance_is_zh"),
        "{log}"
    );
}

#[test]
fn a_caller_who_sends_no_audio_is_hung_up() {
    let h = Hotline::start(
        BASE,
        "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\nanswer_after_ms = 50\n\
         [media]\nrtp_timeout_seconds = 2\n[call]\ninter_digit_timeout_ms = 60000\n",
    );
    // Three keys and no '#': only the silence can end this call.
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n4;2;5;\n").unwrap();
    let started = Instant::now();
    let run = sipp(
        &h,
        "caller_info.xml",
        &["-m", "1", "-inf", inf.to_str().unwrap()],
    );
    assert_sipp_ok(&h, &run);
    let ended = h.wait_for("call ended", 1, Duration::from_secs(5));
    assert!(
        ended[0].contains("reason=RtpTimeout"),
        "{ended:?}\n{}",
        h.log()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_caller_from_an_unknown_number_is_served_only_with_the_owners_pin() {
    use common::caller::Step;
    let (mut h, _data) = menu_hotline();
    let keys = |pin: &str| {
        let mut steps = vec![Step::Pause(400)];
        // Chinese, self-service, balance; building 3, unit 1202, the PIN.
        for k in "111".chars() {
            steps.push(Step::Key(k));
            steps.push(Step::Pause(300));
        }
        for k in format!("3#1202#{pin}#").chars() {
            steps.push(Step::Key(k));
            steps.push(Step::Pause(150));
        }
        steps.push(Step::Pause(1500));
        steps
    };
    for (name, pin) in [("wrong_pin", "1357"), ("right_pin", "2468")] {
        let xml = common::caller::scenario(h.dir.path(), name, "17000000000", "100", &keys(pin));
        let run = sipp(&h, xml.to_str().unwrap(), &["-m", "1", "-i", "127.0.0.2"]);
        assert_sipp_ok(&h, &run);
    }
    let log = h.stop();
    let played: Vec<&str> = log.lines().filter(|l| l.contains(" playing ")).collect();
    let pins = played.iter().filter(|l| l.contains("enter_pin_zh")).count();
    assert_eq!(pins, 2, "{log}");
    // The wrong PIN: not confirmed, an agent. The right one: the balance.
    let not_found = played.iter().position(|l| l.contains("unit_not_found_zh"));
    let balance = played.iter().position(|l| l.contains("balance_is_zh"));
    assert!(
        matches!((not_found, balance), (Some(a), Some(b)) if a < b),
        "{played:#?}"
    );
    assert_eq!(
        played
            .iter()
            .filter(|l| l.contains("balance_is_zh"))
            .count(),
        1
    );
    // (After each line's timestamp, whose digits may well hold "1357".)
    let leaks: Vec<&str> = log
        .lines()
        .map(|l| l.split_once("Z ").map_or(l, |(_, rest)| rest))
        .filter(|l| l.contains("2468") || l.contains("1357"))
        .collect();
    assert!(leaks.is_empty(), "a PIN in the log: {leaks:#?}");
    // Nor in the ticket log, where the call's steps are.
    // (What the events say, not their ids and times, whose digits may hold
    // a PIN's by chance.)
    let events = common::stores::all_events(h.store_path().to_str().unwrap());
    let steps = format!(
        "{:?}",
        events
            .iter()
            .map(|e| (&e.actor, &e.kind))
            .collect::<Vec<_>>()
    );
    assert!(steps.contains("pin = (4 digits)"), "{steps}");
    assert!(
        !steps.contains("2468") && !steps.contains("1357"),
        "{steps}"
    );
}

#[test]
fn http_connections_and_event_streams_are_capped() {
    let h = start_full(
        "",
        "",
        "max_connections_per_source = 10\nmax_event_streams_per_user = 2\n",
        "",
    );
    // 100 idle connections from one address: 10 are kept, the rest closed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = h.http_port();
    let open = runtime.block_on(async move {
        let mut streams = Vec::new();
        for _ in 0..100 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            if let Ok(s) = socket.connect(([127, 0, 0, 1], port).into()).await {
                streams.push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut open = 0;
        for s in &streams {
            let mut b = [0u8; 1];
            match s.try_read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                _ => {}
            }
        }
        (open, streams)
    });
    assert_eq!(open.0, 10, "connections kept from one address");
    // Everyone else is still served meanwhile.
    assert!(metric(&h, "hotline_connections_refused_total") >= 90.0);
    drop(open);
    // Event streams: two per user, the third refused with 503.
    let mut pages = Vec::new();
    for i in 0..3 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /api/agents/2001/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo-2001\r\n\r\n"
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        let status = String::from_utf8_lossy(&head).to_string();
        let expected = if i < 2 {
            "HTTP/1.1 200"
        } else {
            "HTTP/1.1 503"
        };
        assert_eq!(status, expected, "stream {i}");
        pages.push(s);
    }
    // A page closed gives its place back.
    pages.remove(0);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = http(port, "GET", "/api/agents/2001", Some("demo-2001"), None);
    assert_eq!(status, 200);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /api/agents/2001/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo-2001\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[test]
fn an_agent_outside_the_building_works_over_tls_only() {
    // A certificate for 127.0.0.1 (self-signed: the phone is given it as its CA).
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by tests/run.sh)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // Agent 2002 may use TLS only.
    let agents = certs.path().join("agents.toml");
    let text = std::fs::read_to_string(manifest("config/agents.toml"))
        .unwrap()
        .replace("id = \"2002\"\n", "id = \"2002\"\nrequire_tls = true\n");
    std::fs::write(&agents, text).unwrap();
    let mut h = Hotline::start(
        BASE,
        &format!(
            "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\nanswer_after_ms = 50\ntls_listen = \"127.0.0.1:TLS_PORT\"\n\
             tls_certificate = \"{}\"\ntls_private_key = \"{}\"\n[acd]\nagents = \"{}\"\n",
            cert.display(),
            key.display(),
            agents.display()
        ),
    );
    // The softphone (baresip) registers over TLS and logs in with *1.
    let port = h.peer_port + 40;
    let phone = common::baresip::Baresip::start_with(
        h.dir.path(),
        &format!(
            "<sip:2002@127.0.0.1:{};transport=tls>;auth_pass=agent2002;regint=60;answermode=auto;audio_codecs=PCMU/8000",
            h.tls_port()
        ),
        port,
        (port + 10, port + 30),
        &[],
        &format!("sip_cafile {}\n", cert.display()),
    );
    let registered = h.wait_for("agent registered", 1, Duration::from_secs(10));
    assert!(
        registered
            .first()
            .is_some_and(|l| l.contains("agent=2002") && l.contains("transport=tls")),
        "{}",
        h.log()
    );
    phone.command(
        "dial",
        &format!("sip:*1@127.0.0.1:{};transport=tls", h.tls_port()),
    );
    let features = h.wait_for("agent feature code", 1, Duration::from_secs(10));
    assert!(
        features.first().is_some_and(|l| l.contains("agent=2002")),
        "{}",
        h.log()
    );
    // The confirmation plays, then the hotline's BYE reaches the phone over
    // its TLS connection and the call ends.
    let ended = h.wait_for("call ended", 1, Duration::from_secs(15));
    assert!(
        ended
            .first()
            .is_some_and(|l| l.contains("reason=HotlineHungUp")),
        "{}",
        h.log()
    );
    // The right password over UDP is not enough for this agent.
    let udp = Phone::on("127.0.0.1", &h);
    let local = udp.local();
    let challenge = udp.ask(&udp.register("2002", 1, &local, None)).unwrap();
    let auth = answer(
        &challenge,
        "2002",
        "agent2002",
        "REGISTER",
        &format!("sip:{}", h.target()),
    );
    let reply = udp
        .ask(&udp.register("2002", 2, &local, Some(&auth)))
        .unwrap();
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
    assert!(
        h.log().contains("agent may use SIP over TLS only"),
        "{}",
        h.log()
    );
    // Other agents still register over UDP.
    let (reply, _) = udp.register_with_password("2001", "agent2001", 3);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    drop(phone);
    h.stop();
}

#[test]
fn a_stranger_at_a_callers_rtp_port_neither_presses_keys_nor_takes_the_audio() {
    use common::caller::Step;
    let mut h = start("", "", "");
    // The owner talks for 4 s (their media flows), then keys 4 2 #.
    let tone = common::tone_pcap_hz(h.dir.path(), 4000, 1000.0);
    let xml = common::caller::scenario(
        h.dir.path(),
        "talker",
        "13800138000",
        "100",
        &[
            Step::Pause(300),
            Step::Audio(tone, 4000),
            Step::Key('4'),
            Step::Key('2'),
            Step::Key('#'),
            Step::Pause(500),
        ],
    );
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let answered = h.wait_for("call answered", 1, Duration::from_secs(10));
        let port: u16 = answered[0]
            .split_whitespace()
            .find_map(|f| f.strip_prefix("rtp_port="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{answered:?}"));
        // The ports are handed out in order: a stranger on 127.0.0.7 knows
        // it. Once the owner's media flows, they press 9 (an emergency, in
        // the menus) forty times, then pour packets at the port.
        std::thread::sleep(Duration::from_millis(800));
        let stranger = UdpSocket::bind("127.0.0.7:0").unwrap();
        let to = format!("127.0.0.1:{port}");
        let packet = |pt: u8, seq: u16, ts: u32, payload: &[u8]| {
            rtp_rs::RtpPacketBuilder::new()
                .payload_type(pt)
                .ssrc(0x5e5e_5e5e)
                .sequence(rtp_rs::Seq::from(seq))
                .timestamp(ts)
                .payload(payload)
                .build()
                .expect("an RTP packet")
        };
        for i in 0..40u16 {
            let key = packet(101, i, 1000 + u32::from(i) * 800, &[9, 0x8a, 3, 0x20]);
            stranger.send_to(&key, &to).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        let audio = [0xffu8; 160];
        let (started, mut sent) = (Instant::now(), 0u64);
        while sent < 400_000 && started.elapsed() < Duration::from_millis(1500) {
            let pkt = packet(0, sent as u16, sent as u32 * 160, &audio);
            if stranger.send_to(&pkt, &to).is_ok() {
                sent += 1;
            }
        }
        let flood = started.elapsed();
        // Nothing was sent back to the stranger: the owner's audio stayed theirs.
        stranger.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        let back = stranger.recv_from(&mut buf);
        assert!(
            back.is_err(),
            "the hotline sent the call's audio to the stranger: {back:?} {:?}\n{}",
            &buf[..16],
            h.log()
        );
        assert_sipp_ok(&h, &call.join().unwrap());
        let collected = h.wait_for("digits collected", 1, Duration::from_secs(5));
        assert!(
            collected[0].ends_with(" digits=42"),
            "only the owner's keys: {collected:?}"
        );
        let closed = h.wait_for("media closed", 1, Duration::from_secs(5));
        let count = |name: &str| -> u64 {
            closed[0]
                .split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {closed:?}"))
        };
        let (foreign, received) = (count("rtp_foreign"), count("rtp_received"));
        // The port's worker reads a bounded share of the flood: at most 8
        // datagrams a look, about a look a millisecond (twice that allowed
        // for wakes by orders).
        let bound = 8 * 2 * (flood.as_millis() as u64 + 200) + 40;
        eprintln!(
            "stranger: {sent} packets in {flood:?}; the hotline dropped {foreign} as foreign (bound {bound}), took {received} from the owner"
        );
        assert!(
            foreign >= 40,
            "the stranger's packets were read: {closed:?}"
        );
        assert!(
            foreign <= bound,
            "{foreign} of the stranger's packets read, more than {bound}"
        );
        assert!(received <= 4000 / 20 + 20, "only the owner's: {closed:?}");
    });
    assert!(metric(&h, "hotline_rtp_packets_foreign_total") >= 40.0);
    h.stop();
}
